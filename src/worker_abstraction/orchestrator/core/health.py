"""Which workers may get tasks, as one orchestrator sees them.

The registry only hears heartbeats. An orchestrator also sees the work, so it keeps its own standing of
each worker:

- **Unproven** until the worker answers a probe (`GetWorkerInfo`, which every worker serves, seed-built
  ones included). A registration whose address is dead, or is some other kind of server, never gets a
  task, so one bad entry cannot swallow real tasks or hold them up; thousands of them are probed a few
  dozen at a time, newest first, while real workers answer in a millisecond.
- **Suspect** after it could not be handed a task, lost one, or let a deadline pass in silence (a zombie
  whose heartbeats still arrive). It is probed again, with a growing interval, until it answers.
- Its **circuit breaker** (see `breaker.py`) counts consecutive infrastructure failures.

A worker the registry itself marks SUSPECT gets no tasks either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from worker_abstraction.errors import PermissionDeniedError
from worker_abstraction.orchestrator.core.breaker import BreakerState, CircuitBreakers
from worker_abstraction.orchestrator.core.clock import Clock, Timer
from worker_abstraction.types import WorkerInfo, WorkerState

logger = logging.getLogger(__name__)


class Denied(str):
    """A probe's problem that is a refusal of this orchestrator's credentials (PERMISSION_DENIED or
    UNAUTHENTICATED): the worker is there and well, it will just never take a task from us."""

    __slots__ = ()


Probe = Callable[[WorkerInfo], Awaitable[str | None]]  # None: it answered; else why it did not (maybe Denied)


def denied_everywhere(capability: str, reason: str) -> PermissionDeniedError:
    """The error of a task no worker offering its capability will take from this orchestrator."""
    return PermissionDeniedError(
        f"every worker offering {capability!r} refuses this orchestrator's credentials ({reason}). A call to a "
        "worker needs the orchestrator role: submit through an orchestrator daemon (wa submit --orchestrator "
        "ADDR, RemoteOrchestrator), or give this process an orchestrator's token or certificate"
    )


_FIRST_RETRY_SECONDS = 1.0
_MAX_RETRY_SECONDS = 30.0


@dataclass(slots=True)
class _Standing:
    address: str
    proven: bool = False
    suspicion: str = ""  # why it is suspect ("" when it is not)
    retry_seconds: float = _FIRST_RETRY_SECONDS
    timer: Timer | None = None
    probing: bool = False
    probed: bool = False  # its first probe has answered (one way or the other)
    denied: str = ""  # its last probe refused our credentials: why ("" when it did not)


class WorkerStanding:
    """Proven, suspect and circuit state of every worker, and the probes that clear suspicion."""

    def __init__(
        self,
        probe: Probe,
        clock: Clock,
        *,
        breakers: CircuitBreakers | None = None,
        concurrency: int = 32,
    ) -> None:
        self.breakers = breakers or CircuitBreakers()
        self._probe = probe
        self._clock = clock
        self._workers: dict[str, WorkerInfo] = {}
        self._standing: dict[str, _Standing] = {}
        self._due: list[str] = []  # worker ids waiting for a probe slot, newest last
        self._slots = concurrency
        self._running: set[asyncio.Task[None]] = set()
        self.on_recovered: list[Callable[[], None]] = []  # a worker may take tasks again (pump the queue)
        self.on_denied: list[Callable[[], None]] = []  # a worker refused our credentials (fail what waits for it)
        self._probed = asyncio.Event()  # set whenever no known worker waits for its first probe
        self._probed.set()

    # ---- what the scheduler asks ---------------------------------------------------------------------

    def allows(self, worker: WorkerInfo, now: float) -> bool:
        """Whether the worker may get a task now."""
        standing = self._standing.get(worker.worker_id)
        if standing is None or not standing.proven or standing.suspicion:
            return False
        return worker.state is not WorkerState.SUSPECT and self.breakers.allows(worker.worker_id, now)

    def usable(self, worker: WorkerInfo) -> bool:
        """Proven and suspected by nobody: a worker tasks can go to (its circuit aside)."""
        standing = self._standing.get(worker.worker_id)
        proven = standing is not None and standing.proven and not standing.suspicion
        return proven and worker.state is not WorkerState.SUSPECT

    def denial(self, worker: WorkerInfo) -> str:
        """Why the worker refuses this orchestrator's credentials ("" unless its last probe said so)."""
        standing = self._standing.get(worker.worker_id)
        return standing.denied if standing is not None else ""

    def state(self, worker: WorkerInfo) -> tuple[WorkerState, str]:
        """The worker's standing here, with why when it is SUSPECT."""
        if worker.state is WorkerState.SUSPECT:
            return WorkerState.SUSPECT, f"registry: {worker.state_reason}" if worker.state_reason else "registry"
        standing = self._standing.get(worker.worker_id)
        if standing is None or standing.suspicion:
            return WorkerState.SUSPECT, standing.suspicion if standing else "not probed yet"
        if not standing.proven:
            return WorkerState.SUSPECT, "not proven yet: its first probe is on the way"
        return WorkerState.ACTIVE, ""

    # ---- what the directory tells ---------------------------------------------------------------------

    def joined(self, worker: WorkerInfo) -> None:
        """A worker appeared (or changed): probe it unless it is known at the same address."""
        self._workers[worker.worker_id] = worker
        standing = self._standing.get(worker.worker_id)
        if standing is not None and standing.address == worker.address:
            return
        if standing is not None and standing.timer is not None:
            standing.timer.cancel()
        self._standing[worker.worker_id] = _Standing(address=worker.address)
        self._probed.clear()
        self._queue_probe(worker.worker_id)

    def left(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)
        standing = self._standing.pop(worker_id, None)
        if standing is not None and standing.timer is not None:
            standing.timer.cancel()
        self._check_probed()

    async def first_probes(self) -> None:
        """Return once every worker known now has answered its first probe (or failed it)."""
        await self._probed.wait()

    def _check_probed(self) -> None:
        if all(s.probed for s in self._standing.values()):
            self._probed.set()

    # ---- what the task lifecycle reports --------------------------------------------------------------

    def dispatched(self, worker_id: str) -> None:
        self.breakers.dispatched(worker_id)

    def answered(self, worker_id: str) -> None:
        """The worker ran a task to an answer (whatever the answer): its circuit closes."""
        self.breakers.succeeded(worker_id)

    def failed(self, worker_id: str, reason: str) -> None:
        """An infrastructure failure: counts against the breaker, and the worker is suspect until probed."""
        self.breakers.failed(worker_id)
        if self.breakers.state(worker_id) is BreakerState.OPEN:
            logger.warning("circuit open for worker %s: no tasks for %gs", worker_id, self.breakers.cooldown_seconds)
            self._clock.call_later(self.breakers.cooldown_seconds, self._recovered)
        self.suspect(worker_id, reason)

    def suspect(self, worker_id: str, reason: str) -> None:
        standing = self._standing.get(worker_id)
        if standing is None or standing.suspicion:
            return
        logger.warning("worker %s is suspect (%s): no new tasks until it answers a probe", worker_id, reason)
        standing.suspicion = reason
        standing.retry_seconds = _FIRST_RETRY_SECONDS
        self._schedule(worker_id, standing)

    async def aclose(self) -> None:
        for standing in self._standing.values():
            if standing.timer is not None:
                standing.timer.cancel()
        self._due.clear()
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---- probing ----------------------------------------------------------------------------------------

    def _schedule(self, worker_id: str, standing: _Standing) -> None:
        if standing.timer is not None:
            standing.timer.cancel()
        standing.timer = self._clock.call_later(standing.retry_seconds, lambda: self._queue_probe(worker_id))

    def _queue_probe(self, worker_id: str) -> None:
        standing = self._standing.get(worker_id)
        if standing is None or standing.probing:
            return
        standing.timer = None
        standing.probing = True
        self._due.append(worker_id)
        self._start_probes()

    def _start_probes(self) -> None:
        while self._due and len(self._running) < self._slots:
            worker_id = self._due.pop()  # newest first: a fresh registration is rarely the bad one
            task = asyncio.get_running_loop().create_task(self._run_probe(worker_id), name=f"probe-{worker_id}")
            self._running.add(task)
            task.add_done_callback(self._probe_done)

    def _probe_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start_probes()

    async def _run_probe(self, worker_id: str) -> None:
        worker = self._workers.get(worker_id)
        standing = self._standing.get(worker_id)
        if worker is None or standing is None:
            return
        try:
            problem = await self._probe(worker)
        except Exception as error:  # a probe never takes the orchestrator down
            problem = f"probe failed: {error!r}"
        standing.probing = False
        if self._standing.get(worker_id) is not standing:
            return  # it left, or re-registered elsewhere, meanwhile
        if not standing.probed:
            standing.probed = True
            self._check_probed()
        standing.denied = problem if isinstance(problem, Denied) else ""
        if problem is None:
            was = "suspect" if standing.suspicion else "new"
            standing.proven, standing.suspicion = True, ""
            standing.retry_seconds = _FIRST_RETRY_SECONDS
            logger.info("worker %s (%s) answered its probe: it may take tasks", worker_id, was)
            self._recovered()
            return
        if standing.denied:
            problem = f"it refuses this orchestrator's credentials: {problem}"
        if not standing.suspicion:
            logger.warning("worker %s at %s does not take tasks from us: %s", worker_id, worker.address, problem)
        standing.suspicion = problem
        standing.retry_seconds = min(standing.retry_seconds * 2, _MAX_RETRY_SECONDS)
        self._schedule(worker_id, standing)
        if standing.denied:
            for callback in self.on_denied:
                callback()

    def _recovered(self) -> None:
        for callback in self.on_recovered:
            callback()
