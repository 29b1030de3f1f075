"""The registry's logic, independent of gRPC: register, heartbeat, leave, evict, and events."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import replace

from worker_abstraction.errors import InvalidWorkerInfoError, WorkerNotFoundError
from worker_abstraction.registry.events import EventHub, WorkerEvent, WorkerEventType
from worker_abstraction.registry.validation import registration_problems
from worker_abstraction.stores.base import WorkerRecord, WorkerStore
from worker_abstraction.types import LoadReport, WorkerInfo

logger = logging.getLogger(__name__)


class Registry:
    """Live workers and their heartbeats, behind a `WorkerStore`."""

    def __init__(self, store: WorkerStore, *, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.events = EventHub()

    @property
    def heartbeat_interval_seconds(self) -> float:
        # Three heartbeats per TTL: one lost heartbeat never evicts a live worker.
        return self.ttl_seconds / 3

    async def register(self, info: WorkerInfo) -> WorkerInfo:
        """Add or refresh a worker; returns it with its (possibly assigned) id.

        Raises:
            InvalidWorkerInfoError: listing everything wrong with the registration.
        """
        problems = registration_problems(info)
        if problems:
            raise InvalidWorkerInfoError(problems)
        if not info.worker_id:
            info = replace(info, worker_id=uuid.uuid4().hex)
        info = replace(info, last_heartbeat=None, current_load=0)
        # A new process on the address of a dead one replaces it at once instead of waiting for eviction.
        for stale in await self.store.find_by_address(info.address):
            if stale.info.worker_id != info.worker_id:
                await self._drop(stale.info.worker_id, f"replaced by {info.worker_id} at {info.address}")
        record = WorkerRecord(info=info, last_seen=time.time())
        previous = await self.store.put(record)
        if previous is None:
            logger.info("worker %s (%s) joined at %s", info.worker_id, info.name, info.address)
            self.events.publish(WorkerEvent(WorkerEventType.JOINED, record.snapshot()))
        else:
            record.load = previous.load
            self.events.publish(WorkerEvent(WorkerEventType.UPDATED, record.snapshot()))
        return info

    async def heartbeat(self, worker_id: str, load: int, report: LoadReport | None = None) -> bool:
        """Record a heartbeat; False when the worker is unknown and must register again."""
        record = await self.store.get(worker_id)
        if record is None:
            return False
        # Watchers hear of slot changes, not of every wiggle in CPU use.
        changed = record.load != load or _slots(record.report) != _slots(report)
        updated = await self.store.touch(worker_id, load=load, now=time.time(), report=report)
        if updated is None:  # removed between the two calls
            return False
        if changed:
            self.events.publish(WorkerEvent(WorkerEventType.UPDATED, updated.snapshot()))
        return True

    async def deregister(self, worker_id: str) -> None:
        """Remove a worker that leaves cleanly.

        Raises:
            WorkerNotFoundError: the id is unknown.
        """
        if not await self._drop(worker_id, "deregistered"):
            raise WorkerNotFoundError(worker_id)

    async def get(self, worker_id: str) -> WorkerInfo:
        record = await self.store.get(worker_id)
        if record is None or self._is_stale(record, time.time()):
            raise WorkerNotFoundError(worker_id)
        return record.snapshot()

    async def live_workers(self) -> list[WorkerInfo]:
        now = time.time()
        return [r.snapshot() for r in await self.store.all() if not self._is_stale(r, now)]

    async def evict_stale(self) -> int:
        now = time.time()
        evicted = 0
        for record in await self.store.expired(now - self.ttl_seconds):
            silence = now - record.last_seen
            if await self._drop(record.info.worker_id, f"evicted: no heartbeat for {silence:.1f}s"):
                evicted += 1
        return evicted

    async def sweep_forever(self, interval_seconds: float) -> None:
        """Evict stale workers every interval, whether or not anyone lists them."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.evict_stale()
            except Exception:  # a store hiccup must not stop future sweeps
                logger.exception("sweep failed")

    def _is_stale(self, record: WorkerRecord, now: float) -> bool:
        return now - record.last_seen > self.ttl_seconds

    async def _drop(self, worker_id: str, reason: str) -> bool:
        record = await self.store.remove(worker_id)
        if record is None:
            return False
        logger.info("worker %s (%s) left: %s", worker_id, record.info.name, reason)
        self.events.publish(WorkerEvent(WorkerEventType.LEFT, record.snapshot(), reason))
        return True


def _slots(report: LoadReport | None) -> tuple[int, int] | None:
    return (report.free_slots, report.queued) if report is not None else None
