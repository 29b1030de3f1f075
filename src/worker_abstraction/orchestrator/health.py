"""Worker health as one orchestrator sees it: a worker whose heartbeats still arrive may be a zombie.

The registry only hears heartbeats. An orchestrator also sees the work: a worker it cannot hand a task
to, whose task stream died, or that let a task pass its deadline in silence is SUSPECT here and gets no
new tasks, though the registry still lists it. A suspect is probed (GetWorkerInfo) until it answers,
then it is ACTIVE again; if it never does, the registry evicts it once its heartbeats stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from worker_abstraction.types import WorkerInfo, WorkerState

logger = logging.getLogger(__name__)


class HealthWatch:
    """Suspected workers and the probing that clears them."""

    def __init__(
        self,
        probe: Callable[[WorkerInfo], Awaitable[bool]],
        lookup: Callable[[str], WorkerInfo | None],
        *,
        probe_interval_seconds: float = 1.0,
    ) -> None:
        self._probe = probe
        self._lookup = lookup
        self._interval = probe_interval_seconds
        self._suspects: dict[str, str] = {}  # worker id -> why
        self._prober: asyncio.Task[None] | None = None
        self.on_recovered: list[Callable[[], None]] = []

    def suspect(self, worker_id: str, reason: str) -> None:
        if not worker_id or worker_id in self._suspects:
            return
        logger.warning("worker %s is suspect (%s): no new tasks until it answers a probe", worker_id, reason)
        self._suspects[worker_id] = reason
        if self._prober is None or self._prober.done():
            self._prober = asyncio.create_task(self._probe_suspects(), name="probe-suspects")

    def forget(self, worker_id: str) -> None:
        """The worker left the registry: nothing to suspect any more."""
        self._suspects.pop(worker_id, None)

    def state(self, worker: WorkerInfo) -> tuple[WorkerState, str]:
        if worker.state is WorkerState.SUSPECT:
            return WorkerState.SUSPECT, f"registry: {worker.state_reason}" if worker.state_reason else "registry"
        reason = self._suspects.get(worker.worker_id)
        return (WorkerState.SUSPECT, reason) if reason is not None else (WorkerState.ACTIVE, "")

    def allows(self, worker: WorkerInfo) -> bool:
        """Whether the worker may get new tasks."""
        return worker.state is not WorkerState.SUSPECT and worker.worker_id not in self._suspects

    async def aclose(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober

    async def _probe_suspects(self) -> None:
        while self._suspects:
            await asyncio.sleep(self._interval)
            for worker_id in list(self._suspects):
                worker = self._lookup(worker_id)
                if worker is None:  # gone from the registry
                    self._suspects.pop(worker_id, None)
                elif await self._probe(worker):
                    logger.info("worker %s answered its probe: active again", worker_id)
                    self._suspects.pop(worker_id, None)
                    for callback in self.on_recovered:
                        callback()
