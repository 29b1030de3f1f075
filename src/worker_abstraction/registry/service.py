"""The registry's logic, independent of gRPC: register, heartbeat, suspect, leave, evict, and events.

On a shared store (NATS), the store may stop answering for a while (a node died, a leader is being elected)
while the workers keep heartbeating. Such an outage must not evict them, so:

- a heartbeat the store cannot take is remembered here, answered as heard, and written (as heard, if
  nothing newer was) once the store answers again, before anything is decided on what it holds;
- a worker's silence is counted only over the time this replica has known the store to answer (since it
  started, or since its last outage ended): no worker is made SUSPECT or evicted on a verdict computed from
  a store it could not read or write within that time, nor hidden from the workers listed;
- the store keeps each worker's key for the TTL plus an outage grace (see `JetStreamWorkerStore`), so that
  keys do not expire in the bucket meanwhile.

So an outage shorter than the TTL (and than 20 s) evicts no worker that kept heartbeating through it, on
any replica; a worker that really died is evicted at most one TTL after the store answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable
from dataclasses import replace
from typing import TypeVar

from worker_abstraction.errors import (
    InvalidWorkerInfoError,
    PermissionDeniedError,
    StoreUnavailableError,
    WorkerNotFoundError,
)
from worker_abstraction.observability.metrics import RegistryMetrics
from worker_abstraction.registry.events import EventHub, WorkerEvent, WorkerEventType
from worker_abstraction.registry.validation import registration_problems
from worker_abstraction.stores.availability import Backoff, StoreAvailability, raise_if_cancelled
from worker_abstraction.stores.base import SharedWorkerStore, WorkerChange, WorkerRecord, WorkerStore
from worker_abstraction.types import LoadReport, WorkerInfo, WorkerState

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_RETRY_SECONDS = 0.1  # while the store does not answer, the sweeper asks again from this pause up
_RELOG_SECONDS = 60.0  # a sweep that keeps failing unexpectedly logs its traceback this often at most


class Registry:
    """Live workers, their heartbeats and their standing, behind a `WorkerStore`.

    A worker silent for longer than `suspect_after_seconds` becomes SUSPECT (still listed, one UPDATED
    event); its next heartbeat or registration makes it ACTIVE again (one UPDATED event). Silent for
    longer than `ttl_seconds`, it is evicted: LEFT, with a snapshot in state EVICTED whose state_reason is
    the event's reason. A worker that deregisters leaves as it stood (LEFT, reason "deregistered"):
    EVICTED marks only the registry's own removals (silence, or a new worker on its address).

    On a `SharedWorkerStore` (several registries, one view), the events come from the store's change
    reports, so watchers of every registry hear what any of them did, once; and an outage of that store
    evicts no worker that kept heartbeating (see the module docstring). `availability` says whether it
    answers (the health check and metrics follow it).

    Args:
        ttl_seconds: silence after which a worker is evicted.
        suspect_after_seconds: silence after which it is SUSPECT; must be below the TTL (default: two
            thirds of it, i.e. two heartbeat intervals).
        metrics: where heartbeats, registrations and evictions are counted (default: nowhere).
    """

    def __init__(
        self,
        store: WorkerStore,
        *,
        ttl_seconds: float,
        suspect_after_seconds: float | None = None,
        metrics: RegistryMetrics | None = None,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        if suspect_after_seconds is None:
            suspect_after_seconds = ttl_seconds * 2 / 3
        if not 0 < suspect_after_seconds < ttl_seconds:
            raise ValueError(
                f"suspect_after_seconds must be positive and below ttl_seconds ({ttl_seconds:g}), "
                f"got {suspect_after_seconds:g}"
            )
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.suspect_after_seconds = suspect_after_seconds
        self.events = EventHub()
        self._metrics = metrics
        # A shared store reports every replica's changes, ours included: events come from those reports only.
        self._shared = isinstance(store, SharedWorkerStore)
        if isinstance(store, SharedWorkerStore):
            store.listen(self._on_change)
        # Silence is counted from when this replica last knew the store to answer (a shared one: from now).
        self.availability = StoreAvailability(
            "the registry's shared store", since=time.monotonic() if self._shared else None
        )
        # Heartbeats served while the store could not take them: worker id -> (load, report, heard at).
        self._remembered: dict[str, tuple[int, LoadReport | None, float]] = {}

    @property
    def heartbeat_interval_seconds(self) -> float:
        # Three heartbeats per TTL and two per suspect window: one lost heartbeat never evicts a live
        # worker, nor makes it SUSPECT.
        return min(self.ttl_seconds / 3, self.suspect_after_seconds / 2)

    async def register(self, info: WorkerInfo, *, owner: str = "") -> WorkerInfo:
        """Add or refresh a worker; returns it with its (possibly assigned) id.

        Args:
            owner: the principal registering it (empty: callers are not identified). An owned id can be
                registered, refreshed and removed by its owner only, and a live worker's address cannot be
                taken by another principal.

        Raises:
            InvalidWorkerInfoError: listing everything wrong with the registration.
            PermissionDeniedError: the id or the address belongs to another principal's live worker.
        """
        problems = registration_problems(info)
        if problems:
            raise InvalidWorkerInfoError(problems)
        if not info.worker_id:
            info = replace(info, worker_id=uuid.uuid4().hex)
        self._check_store_answers()
        if owner:
            await self._check_takeover(info, owner)
        info = replace(info, last_heartbeat=None, current_load=0, state=WorkerState.ACTIVE, state_reason="")
        # A new process on the address of a dead one replaces it at once instead of waiting for eviction.
        for stale in await self.store.find_by_address(info.address):
            if stale.info.worker_id != info.worker_id:
                reason = f"replaced by {info.worker_id} at {info.address}"
                await self._drop(stale.info.worker_id, reason, evicted=True)
        record = WorkerRecord(info=info, last_seen=time.time(), owner=owner)
        previous = await self._stored(self.store.put(record))
        if self._metrics is not None:
            self._metrics.registrations.inc()
        if previous is None:
            logger.info("worker %s (%s) joined at %s", info.worker_id, info.name, info.address)
            self._publish(WorkerEvent(WorkerEventType.JOINED, record.snapshot()))
        else:
            record.load = previous.load
            self._publish(WorkerEvent(WorkerEventType.UPDATED, record.snapshot()))
        return info

    async def heartbeat(self, worker_id: str, load: int, report: LoadReport | None = None, *, owner: str = "") -> bool:
        """Record a heartbeat; False when the worker is unknown and must register again.

        Raises:
            PermissionDeniedError: `owner` is not the principal that registered the worker.
        """
        record = await self._stored(self.store.get(worker_id))
        if record is None:
            return False
        self._check_owner(record, owner)
        now = time.time()
        if self._is_stale(record, now):
            # Past its TTL it is already gone for every reader (GetAvailableWorkers hides it); evict it now,
            # before the sweep would, so watchers hear LEFT and the worker registers afresh.
            reason = f"evicted: no heartbeat for {now - record.last_seen:.1f}s"
            await self._drop(worker_id, reason, evicted=True, seen_before=now - self.ttl_seconds)
            return False
        # Watchers hear of slot and state changes, not of every wiggle in CPU use.
        was_suspect = record.state is not WorkerState.ACTIVE
        changed = was_suspect or record.load != load or _slots(record.report) != _slots(report)
        if not self.availability.available:  # (no write that would wait for an answer that will not come)
            return self._remember(worker_id, load, report, now)
        try:
            updated = await self.store.touch(worker_id, load=load, now=now, report=report)
        except StoreUnavailableError as error:
            self.availability.failed(error)
            return self._remember(worker_id, load, report, now)
        self._remembered.pop(worker_id, None)
        if updated is None:  # removed between the two calls
            return False
        if self._metrics is not None:
            self._metrics.heartbeats.inc()
        if was_suspect:
            logger.info("worker %s (%s) is active again", worker_id, record.info.name)
        if changed:
            self._publish(WorkerEvent(WorkerEventType.UPDATED, updated.snapshot()))
        return True

    async def deregister(self, worker_id: str, *, owner: str = "") -> None:
        """Remove a worker that leaves cleanly.

        Raises:
            WorkerNotFoundError: the id is unknown.
            PermissionDeniedError: `owner` is not the principal that registered the worker.
        """
        record = await self.store.get(worker_id)
        if record is not None:
            self._check_owner(record, owner)
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

    async def count_by_state(self) -> dict[str, int]:
        """Live workers per state name (ACTIVE, SUSPECT)."""
        now = time.time()
        counts: dict[str, int] = {}
        for record in await self.store.all():
            if not self._is_stale(record, now):
                counts[record.state.name] = counts.get(record.state.name, 0) + 1
        return counts

    async def sweep(self) -> tuple[int, int]:
        """Mark workers silent past `suspect_after_seconds` SUSPECT and evict those silent past the TTL.

        On a shared store, the store is asked first and the heartbeats it could not take are written: a
        store that does not answer decides nothing (see the module docstring).

        Returns:
            How many workers became SUSPECT and how many were evicted.

        Raises:
            StoreUnavailableError: the store stopped answering during the sweep.
        """
        if self._shared and not await self._store_answers():
            return 0, 0
        now = time.time()
        suspect_before = now - self.suspect_after_seconds
        suspected = evicted = 0
        for record in await self.store.expired(suspect_before):
            worker_id, silence = record.info.worker_id, self._silence(record, now)
            if silence > self.ttl_seconds:
                reason = f"evicted: no heartbeat for {silence:.1f}s"
                evicted += await self._drop(worker_id, reason, evicted=True, seen_before=now - self.ttl_seconds)
            elif silence > self.suspect_after_seconds and record.state is WorkerState.ACTIVE:
                reason = f"no heartbeat for {silence:.1f}s"
                marked = await self.store.mark_suspect(worker_id, reason=reason, seen_before=suspect_before)
                if marked is not None:
                    logger.info("worker %s (%s) is suspect: %s", worker_id, record.info.name, reason)
                    self._publish(WorkerEvent(WorkerEventType.UPDATED, marked.snapshot()))
                    suspected += 1
        return suspected, evicted

    async def evict_stale(self) -> int:
        """Sweep once (see `sweep`); returns how many workers were evicted."""
        return (await self.sweep())[1]

    async def sweep_forever(self, interval_seconds: float) -> None:
        """Sweep every interval, whether or not anyone lists the workers; while the store does not answer,
        ask it again sooner, backing off (jittered) up to the interval."""
        backoff = Backoff(min(_FIRST_RETRY_SECONDS, interval_seconds), interval_seconds)
        logged_at = -_RELOG_SECONDS
        while True:
            raise_if_cancelled()  # (a store's call may have swallowed the cancel: nats-py can make it a timeout)
            await asyncio.sleep(interval_seconds if self.availability.available else backoff.pause())
            try:
                await self.sweep()
            except StoreUnavailableError as error:
                self.availability.failed(error)
            except Exception:  # nothing unforeseen may stop future sweeps; its traceback once a minute at most
                now = time.monotonic()
                if now - logged_at >= _RELOG_SECONDS:
                    logged_at = now
                    logger.exception("sweep failed")
                else:
                    logger.debug("sweep failed again", exc_info=True)
            if self.availability.available:
                backoff.reset()

    async def _store_answers(self) -> bool:
        """Whether the shared store answers now; if so, the heartbeats it could not take are written first."""
        assert isinstance(self.store, SharedWorkerStore)
        try:
            await self.store.probe()
            await self._write_remembered()
        except StoreUnavailableError as error:
            self.availability.failed(error)
            return False
        self.availability.answered()
        return True

    def _remember(self, worker_id: str, load: int, report: LoadReport | None, now: float) -> bool:
        """Keep a heartbeat the store cannot take now, to write it once it can; the worker hears it served."""
        self._remembered[worker_id] = (load, report, now)
        if self._metrics is not None:
            self._metrics.heartbeats.inc()
        return True

    async def _write_remembered(self) -> None:
        """Write the heartbeats served while the store did not answer (as heard: unless it holds a newer one)."""
        for worker_id, heard in list(self._remembered.items()):
            load, report, heard_at = heard
            record = await self.store.get(worker_id)
            if record is not None and record.last_seen < heard_at:
                await self.store.touch(worker_id, load=load, now=heard_at, report=report)
            if self._remembered.get(worker_id) is heard:  # (not heard again meanwhile)
                del self._remembered[worker_id]

    def _check_store_answers(self) -> None:
        """Refuse at once what needs a write while the store is known not to answer (the caller retries)."""
        if not self.availability.available:
            raise StoreUnavailableError(f"{self.availability.what} does not answer now; try again in a moment")

    async def _stored(self, call: Awaitable[T]) -> T:
        """A call to the store; one that finds it not answering is noted (health, metrics) and raised."""
        try:
            return await call
        except StoreUnavailableError as error:
            self.availability.failed(error)
            raise

    def _silence(self, record: WorkerRecord, now: float) -> float:
        """How long a worker has been silent, as far as this replica can tell: not counting the time before
        it last found the store answering (heartbeats it could not read or write then may have been sent)."""
        return min(now - record.last_seen, self.availability.available_for())

    async def _check_takeover(self, info: WorkerInfo, owner: str) -> None:
        now = time.time()
        existing = await self.store.get(info.worker_id)
        if existing is not None and not self._is_stale(existing, now):
            self._check_owner(existing, owner)
        for other in await self.store.find_by_address(info.address):
            if other.info.worker_id != info.worker_id and other.owner != owner and not self._is_stale(other, now):
                raise PermissionDeniedError(
                    f"address {info.address} is served by live worker {other.info.worker_id} of another "
                    "principal; it cannot be taken over"
                )

    def _check_owner(self, record: WorkerRecord, owner: str) -> None:
        if owner and record.owner != owner:
            raise PermissionDeniedError(f"worker {record.info.worker_id} belongs to another principal")

    def _is_stale(self, record: WorkerRecord, now: float) -> bool:
        return self._silence(record, now) > self.ttl_seconds

    async def _drop(
        self, worker_id: str, reason: str, *, evicted: bool = False, seen_before: float | None = None
    ) -> bool:
        record = await self._stored(
            self.store.remove(worker_id, reason=reason, evicted=evicted, seen_before=seen_before)
        )
        if record is None:
            return False
        logger.info("worker %s (%s) left: %s", worker_id, record.info.name, reason)
        snapshot = record.snapshot()
        if evicted and self._metrics is not None:
            self._metrics.evictions.inc()
        if evicted:
            snapshot = replace(snapshot, state=WorkerState.EVICTED, state_reason=reason)
        self._publish(WorkerEvent(WorkerEventType.LEFT, snapshot, reason))
        return True

    def _publish(self, event: WorkerEvent) -> None:
        if not self._shared:
            self.events.publish(event)

    def _on_change(self, change: WorkerChange) -> None:
        """Turn a shared store's change (any replica's) into the event this registry's watchers hear."""
        previous, current = change.previous, change.current
        if current is None:
            if previous is None:
                return
            snapshot = previous.snapshot()
            if change.evicted:
                snapshot = replace(snapshot, state=WorkerState.EVICTED, state_reason=change.reason)
            self.events.publish(WorkerEvent(WorkerEventType.LEFT, snapshot, change.reason))
        elif previous is None:
            self.events.publish(WorkerEvent(WorkerEventType.JOINED, current.snapshot()))
        elif (
            change.registered
            or previous.state is not current.state
            or previous.load != current.load
            or _slots(previous.report) != _slots(current.report)
        ):
            self.events.publish(WorkerEvent(WorkerEventType.UPDATED, current.snapshot()))


def _slots(report: LoadReport | None) -> tuple[int, int] | None:
    return (report.free_slots, report.queued) if report is not None else None
