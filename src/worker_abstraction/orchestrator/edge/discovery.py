"""The orchestrator's live view of workers: WatchWorkers when the registry has it, polling otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from worker_abstraction.errors import RegistryUnavailableError
from worker_abstraction.registry.client import RegistryClient, WatchUnsupportedError
from worker_abstraction.registry.events import WorkerEventType
from worker_abstraction.types import WorkerInfo

logger = logging.getLogger(__name__)


class WorkerDirectory:
    """Workers the orchestrator can dispatch to, kept current in the background.

    While the registry is unreachable the last known view is kept (workers keep getting tasks) and the
    directory reconnects with backoff; a fresh snapshot then replaces the view. A registry that restarted
    knows nobody until the workers register again (within a heartbeat interval), so workers missing from
    the snapshot after a reconnection are kept for `carry_over_seconds` unless the registry says they left.
    """

    def __init__(
        self, client: RegistryClient, *, poll_interval_seconds: float = 2.0, carry_over_seconds: float = 10.0
    ) -> None:
        self._client = client
        self._poll_interval = poll_interval_seconds
        self._carry_over = carry_over_seconds
        self._carried: dict[str, asyncio.TimerHandle] = {}  # worker id -> when it is dropped
        self.snapshots = 0  # full views taken from the registry (more than one: it reconnected)
        self.workers: dict[str, WorkerInfo] = {}
        # capability -> ids of the workers offering it; rebuilt on the first lookup after the set of
        # workers or their capabilities changed (not on load updates, and never per task).
        self._index: dict[str, list[str]] | None = None
        self.synced = asyncio.Event()
        self.mode = "watch"
        self._task: asyncio.Task[None] | None = None
        self.last_error: str = ""
        self.on_change: list[Callable[[], None]] = []  # called after every change to the view
        # Called when the registry says a worker left (deregistered or evicted); not for snapshot swaps,
        # which may briefly miss live workers after a registry restart.
        self.on_left: list[Callable[[WorkerInfo, str], None]] = []
        self.on_seen: list[Callable[[WorkerInfo], None]] = []  # a worker joined, or its info changed
        self.on_dropped: list[Callable[[str], None]] = []  # a worker is no longer in the view, for any reason

    @property
    def registry(self) -> str:
        return self._client.address

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="worker-directory")

    async def aclose(self) -> None:
        for timer in self._carried.values():
            timer.cancel()
        self._carried.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def fresh(self, timeout_seconds: float = 2.0) -> list[WorkerInfo]:
        """The known workers with their latest heartbeat and load, as the registry has them right now.

        The live view is updated on joins, leaves and load changes, not on every heartbeat; this asks the
        registry once. When it does not answer in time, the view as it stands is returned.
        """
        known = list(self.workers.values())
        try:
            async with asyncio.timeout(timeout_seconds):
                latest = {w.worker_id: w for w in await self._client.list_workers()}
        except (RegistryUnavailableError, TimeoutError):
            return known
        return [latest.get(worker.worker_id, worker) for worker in known]

    def capable(self, capability: str) -> list[WorkerInfo]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            for worker in self.workers.values():
                for offered in {c.name for c in worker.capabilities}:
                    index.setdefault(offered, []).append(worker.worker_id)
            self._index = index
        return [self.workers[worker_id] for worker_id in self._index.get(capability, ())]

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                if self.mode == "watch":
                    await self._watch()
                else:
                    await self._poll()
                backoff = 0.1
            except WatchUnsupportedError:
                logger.info("registry %s has no WatchWorkers; polling GetAvailableWorkers", self._client.address)
                self.mode = "poll"
            except RegistryUnavailableError as error:
                self.last_error = str(error)
                logger.debug("registry unreachable, keeping %d known workers: %s", len(self.workers), error)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, 2.0)

    async def _watch(self) -> None:
        snapshot: dict[str, WorkerInfo] | None = {}
        async for event in self._client.watch():
            if event.type is WorkerEventType.SYNCED:
                await self._replace(snapshot or {}, carry_over=self.synced.is_set())
                snapshot = None
            elif snapshot is not None:
                if event.worker is not None:
                    snapshot[event.worker.worker_id] = event.worker
            elif event.worker is not None:
                self._stop_carrying(event.worker.worker_id)
                if event.type is WorkerEventType.LEFT:
                    self.workers.pop(event.worker.worker_id, None)
                    self._index = None
                    for callback in self.on_left:
                        callback(event.worker, event.reason)
                    self._dropped(event.worker.worker_id)
                else:
                    previous = self.workers.get(event.worker.worker_id)
                    self.workers[event.worker.worker_id] = event.worker
                    if previous is None or previous.capabilities != event.worker.capabilities:
                        self._index = None
                    for seen in self.on_seen:
                        seen(event.worker)
                self._notify()

    async def _poll(self) -> None:
        while True:
            await self._replace({w.worker_id: w for w in await self._client.list_workers()})
            await asyncio.sleep(self._poll_interval)

    async def _replace(self, workers: dict[str, WorkerInfo], *, carry_over: bool = False) -> None:
        for worker_id in [w for w in self._carried if w in workers]:
            self._stop_carrying(worker_id)
        if carry_over and self._carry_over > 0:
            loop = asyncio.get_running_loop()
            for worker_id, worker in self.workers.items():
                if worker_id not in workers:
                    workers[worker_id] = worker
                    if worker_id not in self._carried:
                        self._carried[worker_id] = loop.call_later(self._carry_over, self._drop_carried, worker_id)
        gone = [worker_id for worker_id in self.workers if worker_id not in workers]
        self.workers = workers
        self.snapshots += 1
        self._index = None
        for worker_id in gone:
            self._dropped(worker_id)
        for worker in workers.values():
            for seen in self.on_seen:
                seen(worker)
        self.last_error = ""
        self.synced.set()
        self._notify()

    def _stop_carrying(self, worker_id: str) -> None:
        timer = self._carried.pop(worker_id, None)
        if timer is not None:
            timer.cancel()

    def _drop_carried(self, worker_id: str) -> None:
        # Not back in the registry in time: gone (its tasks' streams tell the rest).
        self._carried.pop(worker_id, None)
        if self.workers.pop(worker_id, None) is not None:
            logger.info("worker %s did not register again after the registry came back; dropped", worker_id)
            self._index = None
            self._dropped(worker_id)
            for callback in self.on_change:
                callback()

    def _dropped(self, worker_id: str) -> None:
        for callback in self.on_dropped:
            callback(worker_id)

    def _notify(self) -> None:
        for callback in self.on_change:
            callback()
