"""AsyncOrchestrator: the orchestrator engine in this process, wired to a registry and to workers."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.trace import SpanKind

from worker_abstraction import _rpc
from worker_abstraction.errors import InvalidParametersError, NoWorkerError
from worker_abstraction.exchanges import InputAnswer, answer_json
from worker_abstraction.observability import tracing
from worker_abstraction.observability.metrics import OrchestratorMetrics, OrchestratorSnapshot
from worker_abstraction.options import RetryPolicy, TaskOptions
from worker_abstraction.orchestrator.api import AsyncOrchestratorAPI
from worker_abstraction.orchestrator.core.breaker import BreakerState, CircuitBreakers
from worker_abstraction.orchestrator.core.clock import Clock, LoopClock
from worker_abstraction.orchestrator.core.crew import Crew
from worker_abstraction.orchestrator.core.engine import Engine
from worker_abstraction.orchestrator.core.gates import ConcurrencyLimit, Gates, LimitSet, RateLimit
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.health import Denied, WorkerStanding, denied_everywhere
from worker_abstraction.orchestrator.core.home import TaskHome
from worker_abstraction.orchestrator.core.phase import Phase
from worker_abstraction.orchestrator.core.records import TaskIndex
from worker_abstraction.orchestrator.core.retention import Retention
from worker_abstraction.orchestrator.core.scheduler import Scheduler
from worker_abstraction.orchestrator.core.timetable import Timetable
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.orchestrator.edge.follow import Reach
from worker_abstraction.orchestrator.edge.link import WorkerLinks
from worker_abstraction.orchestrator.embedded_schedules import EmbeddedSchedules
from worker_abstraction.orchestrator.homes.journal import NullJournal, StoreJournal
from worker_abstraction.orchestrator.homes.local import LocalHome
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.schedules.book import MemoryBook, ScheduleBook
from worker_abstraction.stores.tasks import TaskStore
from worker_abstraction.tls import TLSConfig
from worker_abstraction.types import (
    DeadLetter,
    LimitedQueue,
    TaskQuery,
    TaskRecord,
    TaskStatus,
    WorkerHealth,
    WorkerInfo,
)

logger = logging.getLogger(__name__)


def _daemons_up(home: TaskHome | None) -> Callable[[], int]:
    """How many engines share the home's limits (a shared home says; one otherwise)."""
    count = getattr(home, "daemons_up", None)
    return count if callable(count) else lambda: 1


def schedule_book_of(home: TaskHome) -> ScheduleBook:
    """Where a home keeps schedules: its own book if it has one (SQLite, NATS), else memory."""
    make = getattr(home, "schedule_book", None)
    return make() if callable(make) else MemoryBook()


class AsyncOrchestrator(EmbeddedSchedules, AsyncOrchestratorAPI):
    """Queues tasks, hands them to capable workers with free slots, and follows them to their end.

    `RemoteOrchestrator` offers the same calls served by a daemon (see `AsyncOrchestratorAPI`).

    Args:
        registry: host:port of the registry, or several comma-separated (replicas, tried in order).
        discovery_timeout_seconds: how long `start()` waits for the first view of the workers.
        poll_interval_seconds: polling period when the registry lacks WatchWorkers (a seed registry).
        fast_path: use a worker's task channel when it offers one (False: always the seed's RPCs).
        max_queued: tasks that may wait for a free worker at once; past it submissions raise QueueFullError.
        max_queued_per_capability: tighter bounds for single capabilities.
        aging_seconds: a waiting task gains one priority level per this many seconds, so none starves.
        fairness_weights: turns per round for fairness keys (default 1 each).
        retry_policy: the default RetryPolicy (a task may bring its own).
        queue_timeout_seconds: default limit on how long a task may wait for a worker (None: no limit).
        queue_without_workers: accept tasks for a capability no live worker offers yet; they wait (bounded
            by their queue timeout) instead of being refused with NoWorkerError, the seed's behaviour.
        breaker_failure_threshold: consecutive infrastructure failures that open a worker's circuit.
        breaker_cooldown_seconds: how long an open circuit keeps tasks away before one probe may go.
        task_store: where accepted tasks are kept (e.g. SqliteTaskStore); unfinished ones are resumed by
            `start()`, finished ones and dead letters stay readable. Default: nothing is kept.
        keep_finished: finished tasks whose records are kept in memory for `task()` / `tasks()`.
        home: where tasks live (`orchestrator.homes`), instead of `task_store`: e.g. a `PartitionedHome`
            shares them with other orchestrators on NATS JetStream (tasks accepted here run here, in a
            partition this one holds; those of one that dies carry on where its partitions go).
        links: the connections to workers (inject a `WorkerLinks` to watch or break them).
        directory: the live view of workers (inject one to tune or observe discovery).
        clock: the source of time for deadlines, back-offs and probes.
        tls: reach the registry and the workers over TLS, trusting `tls.ca` (and presenting `tls.cert` for
            mTLS); default plaintext. Injected `links` and `directory` bring their own channels.
        metrics: count tasks, retries and waits there, and report the queue, the tasks in flight, the
            circuits and the dead letters when it is scraped (see `observability.metrics`); default none.
        rate_limits: task starts per window, per capability (and key): tasks over a limit wait (`gates`).
        concurrency_limits: tasks in flight per capability (and key), with a strategy (`gates`).
        retention: how long finished tasks and dead letters are kept (`core.retention`; default: for good).
        approval_required: capabilities whose every task waits for an operator's approval before it runs
            (`approve` / `deny`; a single task asks for it with `require_approval=True`).
    """

    def __init__(
        self,
        registry: str,
        *,
        discovery_timeout_seconds: float = 5.0,
        poll_interval_seconds: float = 2.0,
        fast_path: bool = True,
        max_queued: int = 100_000,
        max_queued_per_capability: Mapping[str, int] | None = None,
        aging_seconds: float = 10.0,
        fairness_weights: Mapping[str, int] | None = None,
        retry_policy: RetryPolicy | None = None,
        queue_timeout_seconds: float | None = None,
        queue_without_workers: bool = False,
        breaker_failure_threshold: int = 5,
        breaker_cooldown_seconds: float = 10.0,
        task_store: TaskStore | None = None,
        keep_finished: int = 10_000,
        links: WorkerLinks | None = None,
        directory: WorkerDirectory | None = None,
        clock: Clock | None = None,
        tls: TLSConfig | None = None,
        metrics: OrchestratorMetrics | None = None,
        home: TaskHome | None = None,
        rate_limits: Iterable[RateLimit] = (),
        concurrency_limits: Iterable[ConcurrencyLimit] = (),
        retention: Retention | None = None,
        approval_required: Iterable[str] = (),
    ) -> None:
        if home is not None and task_store is not None:
            raise ValueError("give a task_store or a home, not both (a home keeps its tasks itself)")
        self.registry = registry
        self._metrics = metrics
        self._discovery_timeout = discovery_timeout_seconds
        clock = clock or LoopClock()
        self._directory = directory or WorkerDirectory(
            RegistryClient(registry, tls=tls), poll_interval_seconds=poll_interval_seconds
        )
        self._links = links or WorkerLinks(
            fast_path=fast_path, clock=clock, channel_factory=functools.partial(_rpc.worker_channel, tls=tls)
        )
        breakers = CircuitBreakers(
            failure_threshold=breaker_failure_threshold, cooldown_seconds=breaker_cooldown_seconds, now=clock.now
        )
        self._standing = WorkerStanding(self._probe, clock, breakers=breakers)
        self._directory.on_seen.append(self._standing.joined)
        self._directory.on_dropped.append(self._standing.left)
        scheduler = Scheduler(
            self._directory,
            self._standing,
            clock,
            max_queued=max_queued,
            max_queued_per_capability=max_queued_per_capability,
            aging_seconds=aging_seconds,
            fairness_weights=fairness_weights,
            gates=Gates(rate_limits, concurrency_limits, share=_daemons_up(home)),
        )
        if home is None:
            home = LocalHome(StoreJournal(task_store) if task_store is not None else NullJournal())
        self.home = home
        index = TaskIndex(keep_finished=keep_finished)
        crew = Crew(
            scheduler=scheduler,
            links=self._links,
            standing=self._standing,
            finished=index,
            clock=clock,
            retry_policy=retry_policy or RetryPolicy(),
            metrics=metrics,
            approval_required=frozenset(approval_required),
        )
        self.engine = Engine(
            crew,
            self._directory,
            home,
            index,
            queue_timeout_seconds=queue_timeout_seconds,
            queue_without_workers=queue_without_workers,
            retention=retention,
        )
        self.timetable = Timetable(schedule_book_of(home), self.engine, clock)
        self._started = False
        self._closed = False

    @classmethod
    async def create(cls, registry: str, **options: Any) -> AsyncOrchestrator:
        """Construct and start an orchestrator."""
        orchestrator = cls(registry, **options)
        await orchestrator.start()
        return orchestrator

    async def start(self) -> None:
        """Watch the registry, wait (briefly) for the first view of the workers, resume stored tasks."""
        if self._started:
            return
        self._started = True
        if self._metrics is not None:
            self._metrics.watch(self._metrics_snapshot)
        self._directory.start()
        try:
            async with asyncio.timeout(self._discovery_timeout):
                await self._directory.synced.wait()
                # The workers known now answer their first probe within a round trip: wait for that, so
                # the first tasks go straight to them instead of queueing behind the probes.
                await self._standing.first_probes()
        except TimeoutError:
            if not self._directory.synced.is_set():
                logger.warning("no answer from registry %s yet; continuing without workers", self.registry)
        await self.engine.start()
        await self.timetable.start()

    async def aclose(self) -> None:
        """Stop following tasks and close every connection."""
        if self._closed:
            return
        self._closed = True
        await self.timetable.aclose()
        await self.engine.aclose()  # first: the tasks a shared home holds here go to other replicas at once
        if self._metrics is not None:
            self._metrics.unwatch()
        await self._directory.aclose()
        await self._standing.aclose()
        await self._links.aclose()

    async def workers(self) -> list[WorkerInfo]:
        """The live workers, with their latest heartbeat and load as the registry has them."""
        return await self._directory.fresh()

    async def wait_for_workers(
        self, capability: str | None = None, *, count: int = 1, timeout_seconds: float = 10.0
    ) -> list[WorkerInfo]:
        """See `AsyncOrchestratorAPI.wait_for_workers`: a worker counts once it answered its probe."""
        if not self._started:
            await self.start()
        changed = asyncio.Event()
        self._directory.on_change.append(changed.set)
        self._standing.on_recovered.append(changed.set)
        self._standing.on_denied.append(changed.set)
        try:
            async with asyncio.timeout(timeout_seconds):
                while True:
                    directory = self._directory
                    offering = directory.capable(capability) if capability else list(directory.workers.values())
                    found = [w for w in offering if self._standing.usable(w)]
                    if len(found) >= count:
                        return found
                    if capability and offering and all(self._standing.denial(w) for w in offering):
                        raise denied_everywhere(capability, self._standing.denial(offering[0]))
                    changed.clear()
                    await changed.wait()
        except TimeoutError:
            raise NoWorkerError(capability or "*", f"fewer than {count} worker(s) after {timeout_seconds:g}s") from None
        finally:
            self._directory.on_change.remove(changed.set)
            self._standing.on_recovered.remove(changed.set)
            self._standing.on_denied.remove(changed.set)

    async def worker_health(self) -> list[WorkerHealth]:
        """Every live worker as this orchestrator sees it: standing, circuit breaker, its tasks there."""
        return self.engine.worker_health(await self._directory.fresh())

    async def queue_depths(self) -> dict[str, dict[int, int]]:
        """Tasks waiting for a worker, per capability and priority."""
        return self.engine.queue_depths()

    async def limits(self) -> LimitSet:
        return self.engine.crew.scheduler.gates.current

    async def set_limits(self, *limits: RateLimit | ConcurrencyLimit) -> LimitSet:
        if not self._started:
            await self.start()
        problems: list[str] = []
        for limit in limits:
            problems += [f"{limit.capability[:60]!r}: {p}" for p in limit.problems()]
            offering = self._directory.capable(limit.capability)
            if not offering:
                known = sorted({c.name for w in self._directory.workers.values() for c in w.capabilities})[:20]
                problems.append(
                    f"no live worker offers capability {limit.capability[:60]!r} (offered now: {', '.join(known)}); "
                    "set its limits once one is up, or with the daemon's --rate-limit / --concurrency-limit"
                )
            elif limit.key.startswith("param:"):
                name = limit.key.removeprefix("param:")
                spec = offering[0].capability(limit.capability)
                if spec is not None and spec.parameters and spec.parameter(name) is None:
                    declared = ", ".join(p.name for p in spec.parameters)
                    problems.append(f"capability {limit.capability[:60]!r} has no parameter {name!r} ({declared})")
        if problems:
            raise InvalidParametersError(problems)
        gates = self.engine.crew.scheduler.gates
        for limit in limits:
            if isinstance(limit, RateLimit):
                gates.set_rate(limit)
            else:
                gates.set_concurrency(limit)
        self.engine.crew.scheduler.pump()
        return gates.current

    async def remove_limits(self, capability: str) -> LimitSet:
        gates = self.engine.crew.scheduler.gates
        gates.remove(capability)
        self.engine.crew.scheduler.pump()
        return gates.current

    async def version_splits(self) -> dict[str, dict[str, int]]:
        return self.engine.crew.scheduler.splits.all()

    async def set_version_split(self, capability: str, weights: Mapping[str, int]) -> dict[str, dict[str, int]]:
        scheduler = self.engine.crew.scheduler
        scheduler.splits.set(capability, weights)
        scheduler.pump()
        return scheduler.splits.all()

    async def limited_queues(self) -> list[LimitedQueue]:
        gates = self.engine.crew.scheduler.gates
        return [
            LimitedQueue(capability, waiting, None if math.isinf(wait) else wait, gates.describe(capability))
            for capability, (waiting, wait) in sorted(self.engine.crew.scheduler.gated().items())
        ]

    async def _ready(self) -> None:
        if not self._started:
            await self.start()

    async def _submit(self, capability: str, params: Mapping[str, Any] | None, options: TaskOptions) -> AsyncTaskHandle:
        if not self._started:
            await self.start()
        if not tracing.enabled():
            return await self.engine.submit(capability, params, options)
        with tracing.submit_span(capability, kind=SpanKind.PRODUCER) as span:
            handle = await self.engine.submit(capability, params, options, tracing.context_of(span))
            span.set_attribute("wa.task_id", handle.task_id)
            return handle

    async def watch(self, task_id: str) -> AsyncTaskHandle:
        """A handle on any task this orchestrator knows, running or finished.

        Raises:
            TaskNotFoundError: the task is unknown (or no longer remembered, see `keep_finished`).
        """
        return await self.engine.watch(task_id)

    async def cancel(self, task_id: str, reason: str = "") -> bool:
        """Cancel a task; see `AsyncTaskHandle.cancel`. False if it had already finished.

        Raises:
            TaskNotFoundError: the orchestrator does not know the task.
        """
        return await self.engine.cancel(task_id, reason)

    async def provide_input(
        self, task_id: str, value: Any, *, request_id: str = "", answered_by: str = ""
    ) -> InputAnswer:
        return await self.engine.provide_input(
            task_id, answer_json(value), request_id=request_id, answered_by=answered_by
        )

    async def claim(self, task_id: str, claimant: str = "", *, release: bool = False) -> TaskRecord:
        return self.engine.claim(task_id, claimant, release=release)

    async def approve(self, task_id: str, reason: str = "") -> TaskStatus:
        return await self.engine.decide(task_id, True, reason=reason)

    async def deny(self, task_id: str, reason: str = "") -> TaskStatus:
        return await self.engine.decide(task_id, False, reason=reason)

    async def task(self, task_id: str) -> TaskRecord:
        """Where a task stands: status, latest update, every attempt (finished tasks too, see `keep_finished`).

        Raises:
            TaskNotFoundError: the orchestrator does not know (or no longer remembers) the task.
        """
        return await self.engine.task(task_id)

    async def _page(self, query: TaskQuery) -> tuple[list[TaskRecord], bool]:
        return await self.engine.task_page(query)

    async def dead_letters(self) -> list[DeadLetter]:
        """Tasks that failed for good after retryable failures, oldest first, with their attempts."""
        return await self.engine.dead_letters()

    async def requeue_dead_letter(self, task_id: str) -> AsyncTaskHandle:
        """Submit a dead-lettered task again: same capability, parameters and options, a new task id.

        Raises:
            TaskNotFoundError: no dead letter has this id.
        """
        return await self.engine.requeue_dead_letter(task_id)

    async def purge_dead_letters(self, task_ids: Iterable[str] | None = None) -> int:
        """Drop dead letters (all, or those given); returns how many were dropped."""
        return await self.engine.purge_dead_letters(task_ids)

    async def _metrics_snapshot(self) -> OrchestratorSnapshot:
        crew, workers = self.engine.crew, list(self._directory.workers)
        return OrchestratorSnapshot(
            queue_depths=self.engine.queue_depths(),
            in_flight={worker_id: crew.scheduler.in_flight(worker_id) for worker_id in workers},
            circuits={worker_id: self._standing.breakers.state(worker_id).value for worker_id in workers},
            circuit_states=[state.value for state in BreakerState],
            dead_letters=len(await self.engine.dead_letters()),
            limited={held.capability: held.waiting for held in await self.limited_queues()},
            schedules=self.timetable.counts(),
            delayed=sum(1 for run in list(self.engine.index.live.values()) if run.phase is Phase.DELAYED),
        )

    async def _probe(self, worker: WorkerInfo) -> str | None:
        verdict, detail = await self._links.get(worker.address).reach()
        if verdict is Reach.ANSWERED:
            return None
        await self._links.discard_idle(worker.address)
        if verdict is Reach.DENIED:
            return Denied(detail)
        return f"probe {verdict.value}: {detail}"
