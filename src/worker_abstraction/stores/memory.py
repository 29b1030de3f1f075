"""The default worker store: a dict in the registry's memory."""

from __future__ import annotations

from worker_abstraction.stores.base import WorkerRecord
from worker_abstraction.types import LoadReport


class MemoryWorkerStore:
    """Keeps workers in process memory; lost when the registry restarts (workers re-register)."""

    def __init__(self) -> None:
        self._records: dict[str, WorkerRecord] = {}

    async def put(self, record: WorkerRecord) -> WorkerRecord | None:
        previous = self._records.get(record.info.worker_id)
        self._records[record.info.worker_id] = record
        return previous

    async def get(self, worker_id: str) -> WorkerRecord | None:
        return self._records.get(worker_id)

    async def remove(self, worker_id: str) -> WorkerRecord | None:
        return self._records.pop(worker_id, None)

    async def touch(
        self, worker_id: str, *, load: int, now: float, report: LoadReport | None = None
    ) -> WorkerRecord | None:
        record = self._records.get(worker_id)
        if record is not None:
            record.last_seen, record.load, record.report = now, load, report
        return record

    async def all(self) -> list[WorkerRecord]:
        return list(self._records.values())

    async def find_by_address(self, address: str) -> list[WorkerRecord]:
        return [r for r in self._records.values() if r.info.address == address]

    async def expired(self, before: float) -> list[WorkerRecord]:
        return [r for r in self._records.values() if r.last_seen < before]
