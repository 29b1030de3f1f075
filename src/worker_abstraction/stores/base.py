"""The worker store interface. Async throughout, so durable and distributed stores fit behind it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from worker_abstraction.types import LoadReport, WorkerInfo, WorkerState


@dataclass(slots=True)
class WorkerRecord:
    """A registered worker: what it declared, when it was last heard from (wall clock), its load and state.

    The state is ACTIVE or SUSPECT: an evicted worker has no record. `owner` is the principal that
    registered it (empty: callers are not identified).
    """

    info: WorkerInfo
    last_seen: float
    load: int = 0
    report: LoadReport | None = None
    state: WorkerState = WorkerState.ACTIVE
    state_reason: str = ""
    owner: str = ""

    def snapshot(self) -> WorkerInfo:
        """The declared info with the live fields (last heartbeat, load, state) filled in."""
        return replace(
            self.info,
            last_heartbeat=datetime.fromtimestamp(self.last_seen, UTC),
            current_load=self.load,
            load_report=self.report,
            state=self.state,
            state_reason=self.state_reason,
        )


class WorkerStore(Protocol):
    """What the registry needs from storage."""

    async def put(self, record: WorkerRecord) -> WorkerRecord | None:
        """Insert or replace a worker; returns the record it replaced."""
        ...

    async def get(self, worker_id: str) -> WorkerRecord | None: ...

    async def remove(
        self, worker_id: str, *, reason: str = "", evicted: bool = False, seen_before: float | None = None
    ) -> WorkerRecord | None:
        """Delete a worker; returns the removed record, or None if it was unknown.

        `reason` and `evicted` say why, for stores that report changes to other registries. With
        `seen_before`, only a worker last seen before then is removed (check and removal are one step, so
        an eviction never removes a worker whose heartbeat just arrived).
        """
        ...

    async def touch(
        self, worker_id: str, *, load: int, now: float, report: LoadReport | None = None
    ) -> WorkerRecord | None:
        """Record a heartbeat, which makes the worker ACTIVE again.

        Returns the updated record, or None if the worker is unknown.
        """
        ...

    async def mark_suspect(self, worker_id: str, *, reason: str, seen_before: float) -> WorkerRecord | None:
        """Make a worker SUSPECT if it is still ACTIVE and was last seen before `seen_before`.

        Returns the updated record, or None if nothing changed (unknown, already SUSPECT, or a heartbeat
        arrived since the caller looked: the check and the change are one step, so a heartbeat is never
        overwritten by a stale verdict).
        """
        ...

    async def all(self) -> list[WorkerRecord]: ...

    async def find_by_address(self, address: str) -> list[WorkerRecord]: ...

    async def expired(self, before: float) -> list[WorkerRecord]:
        """Workers last seen before the given wall-clock time."""
        ...


@dataclass(frozen=True, slots=True)
class WorkerChange:
    """One change of a shared store, whichever registry replica made it.

    `previous` is the record before (None: it joined), `current` after (None: it left). `registered` marks a
    registration (as opposed to a heartbeat or a verdict); `reason` and `evicted` say why a worker left.
    """

    previous: WorkerRecord | None
    current: WorkerRecord | None
    registered: bool = False
    reason: str = ""
    evicted: bool = False


@runtime_checkable
class SharedWorkerStore(WorkerStore, Protocol):
    """A store several registries share: every change, theirs and ours, is reported through `listen`, and
    the registry derives its WatchWorkers events from those reports instead of from its own calls."""

    def listen(self, listener: Callable[[WorkerChange], None]) -> None:
        """Call `listener` with every change, in the order the store applied them."""
        ...

    async def probe(self) -> None:
        """Return once the store answers (the registry asks before it decides anything on what it holds).

        Raises:
            StoreUnavailableError: it does not answer now.
        """
        ...
