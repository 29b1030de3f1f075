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
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str = ""
        self.on_change: list[Callable[[], None]] = []  # called after every change to the view
        # Called when the registry says a worker left (deregistered or evicted); not for snapshot swaps,
        # which may briefly miss live workers after a registry restart.
        self.on_left: list[Callable[[WorkerInfo, str], None]] = []

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

    def capable(self, capability: str) -> list[WorkerInfo]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            for worker in self.workers.values():
                for offered in {c.name for c in worker.capabilities}:
                    index.setdefault(offered, []).append(worker.worker_id)
            self._index = index
        return [self.workers[worker_id] for worker_id in self._index.get(capability, ())]

    async def wait_until(self, capability: str | None, count: int) -> list[WorkerInfo]:
        """Wait until at least `count` live workers (offering `capability`, if given) are known."""
        async with self._changed:
            while True:
                found = self.capable(capability) if capability else list(self.workers.values())
                if len(found) >= count:
                    return found
                await self._changed.wait()

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
                else:
                    previous = self.workers.get(event.worker.worker_id)
                    self.workers[event.worker.worker_id] = event.worker
                    if previous is None or previous.capabilities != event.worker.capabilities:
                        self._index = None
                await self._notify()

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
        self.workers = workers
        self.snapshots += 1
        self._index = None
        self.last_error = ""
        self.synced.set()
        await self._notify()

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
            for callback in self.on_change:
                callback()

    async def _notify(self) -> None:
        for callback in self.on_change:
            callback()
        async with self._changed:
            self._changed.notify_all()
