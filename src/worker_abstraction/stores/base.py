"""The worker store interface. Async throughout, so durable and distributed stores fit behind it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from worker_abstraction.types import LoadReport, WorkerInfo


@dataclass(slots=True)
class WorkerRecord:
    """A registered worker: what it declared, plus when it was last heard from (wall clock) and its load."""

    info: WorkerInfo
    last_seen: float
    load: int = 0
    report: LoadReport | None = None

    def snapshot(self) -> WorkerInfo:
        """The declared info with the live fields (last heartbeat, load) filled in."""
        return replace(
            self.info,
            last_heartbeat=datetime.fromtimestamp(self.last_seen, UTC),
            current_load=self.load,
            load_report=self.report,
        )


class WorkerStore(Protocol):
    """What the registry needs from storage."""

    async def put(self, record: WorkerRecord) -> WorkerRecord | None:
        """Insert or replace a worker; returns the record it replaced."""
        ...

    async def get(self, worker_id: str) -> WorkerRecord | None: ...

    async def remove(self, worker_id: str) -> WorkerRecord | None:
        """Delete a worker; returns the removed record, or None if it was unknown."""
        ...

    async def touch(
        self, worker_id: str, *, load: int, now: float, report: LoadReport | None = None
    ) -> WorkerRecord | None:
        """Record a heartbeat; returns the updated record, or None if the worker is unknown."""
        ...

    async def all(self) -> list[WorkerRecord]: ...

    async def find_by_address(self, address: str) -> list[WorkerRecord]: ...

    async def expired(self, before: float) -> list[WorkerRecord]:
        """Workers last seen before the given wall-clock time."""
        ...
