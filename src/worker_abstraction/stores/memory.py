"""The default worker store: dicts in the registry's memory."""

from __future__ import annotations

from worker_abstraction.stores.base import WorkerRecord
from worker_abstraction.types import LoadReport, WorkerState


class MemoryWorkerStore:
    """Keeps workers in process memory; lost when the registry restarts (workers re-register)."""

    def __init__(self) -> None:
        self._records: dict[str, WorkerRecord] = {}
        # address -> worker ids, so registering the 10,000th worker does not scan the other 9,999.
        self._by_address: dict[str, set[str]] = {}

    async def put(self, record: WorkerRecord) -> WorkerRecord | None:
        worker_id = record.info.worker_id
        previous = self._records.get(worker_id)
        if previous is not None:
            self._unindex(previous)
        self._records[worker_id] = record
        self._by_address.setdefault(record.info.address, set()).add(worker_id)
        return previous

    async def get(self, worker_id: str) -> WorkerRecord | None:
        return self._records.get(worker_id)

    async def remove(
        self, worker_id: str, *, reason: str = "", evicted: bool = False, seen_before: float | None = None
    ) -> WorkerRecord | None:
        record = self._records.get(worker_id)
        if record is None or (seen_before is not None and record.last_seen >= seen_before):
            return None
        del self._records[worker_id]
        self._unindex(record)
        return record

    async def touch(
        self, worker_id: str, *, load: int, now: float, report: LoadReport | None = None
    ) -> WorkerRecord | None:
        record = self._records.get(worker_id)
        if record is not None:
            record.last_seen, record.load, record.report = now, load, report
            record.state, record.state_reason = WorkerState.ACTIVE, ""
        return record

    async def mark_suspect(self, worker_id: str, *, reason: str, seen_before: float) -> WorkerRecord | None:
        record = self._records.get(worker_id)
        if record is None or record.state is not WorkerState.ACTIVE or record.last_seen >= seen_before:
            return None
        record.state, record.state_reason = WorkerState.SUSPECT, reason
        return record

    async def all(self) -> list[WorkerRecord]:
        return list(self._records.values())

    async def find_by_address(self, address: str) -> list[WorkerRecord]:
        return [self._records[i] for i in self._by_address.get(address, ())]

    async def expired(self, before: float) -> list[WorkerRecord]:
        return [r for r in self._records.values() if r.last_seen < before]

    def _unindex(self, record: WorkerRecord) -> None:
        ids = self._by_address.get(record.info.address)
        if ids is not None:
            ids.discard(record.info.worker_id)
            if not ids:
                del self._by_address[record.info.address]
