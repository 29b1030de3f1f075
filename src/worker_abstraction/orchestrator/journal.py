"""The orchestrator's journal: each task's facts written to a TaskStore in order, and read back after a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from worker_abstraction import _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.orchestrator.retry import RetryPolicy
from worker_abstraction.orchestrator.scheduler import Job
from worker_abstraction.stores.tasks import MemoryTaskStore, StoredTask, TaskStore
from worker_abstraction.types import DeadLetter, TaskRecord, TaskStatus


@dataclass(frozen=True, slots=True)
class Resumable:
    """An unfinished task read back from the store, ready to be rebuilt into a job."""

    stored: StoredTask
    task: pb.Task
    params: dict[str, Any]
    timeout_seconds: float
    pinned: str
    retry: RetryPolicy | None
    idempotency_key: str


class TaskJournal:
    """Writes each task's facts (accepted, dispatched, requeued, cancel requested, finished) when the store is
    durable, and the dead-letter queue's changes; reads them back after a restart."""

    def __init__(self, store: TaskStore | None) -> None:
        self.store: TaskStore = store or MemoryTaskStore()
        self.durable = store is not None and not isinstance(store, MemoryTaskStore)
        self._writes: set[asyncio.Future[None]] = set()

    async def accepted(self, job: Job, idempotency_key: str | None) -> None:
        """Awaited before the caller hears "accepted": a crash after it cannot lose the task."""
        await self.store.accepted(
            job.task.task_id,
            job.task.SerializeToString(),
            _options(job, idempotency_key),
            capability=job.capability,
            idempotency_key=idempotency_key or "",
        )

    def dispatched(self, job: Job) -> None:
        handle = job.handle
        self._write(self.store.dispatched(job.task.task_id, handle.worker_id, handle.worker_address, job.task.attempt))

    def requeued(self, job: Job) -> None:
        self._write(self.store.requeued(job.task.task_id))

    async def cancel_requested(self, job: Job, reason: str) -> None:
        """Awaited before the caller hears "canceling": a restart after it still carries the cancel out."""
        await self.store.cancel_requested(job.task.task_id, reason)

    def finished(self, record: TaskRecord) -> None:
        self._write(
            self.store.finished(record.task_id, _convert.record_to_pb(record).SerializeToString(), int(record.status))
        )

    def dead_lettered(self, letter: DeadLetter) -> None:
        entry = _convert.dead_letter_to_pb(letter).SerializeToString()
        self._write(self.store.dead_lettered(letter.task_id, entry, "{}"))

    def dead_letters_removed(self, task_ids: Sequence[str]) -> None:
        self._write(self.store.dead_letters_removed(task_ids))

    async def dead_letters(self) -> list[DeadLetter]:
        letters = []
        for stored in await self.store.dead_letters():
            letters.append(_convert.dead_letter_from_pb(pb.DeadLetterEntry.FromString(stored.entry)))
        return letters

    async def finished_record(self, task_id: str) -> TaskRecord | None:
        return _record(await self.store.finished_record(task_id))

    async def finished_by_key(self, idempotency_key: str) -> TaskRecord | None:
        return _record(await self.store.finished_by_key(idempotency_key))

    async def finished_records(
        self, *, statuses: list[TaskStatus], capability: str, limit: int, offset: int
    ) -> list[TaskRecord]:
        found = await self.store.finished_records(
            statuses=[int(s) for s in statuses], capability=capability, limit=limit, offset=offset
        )
        return [record for data in found if (record := _record(data)) is not None]

    async def drain(self) -> None:
        """Wait for every write made so far."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def resumable(self) -> list[Resumable]:
        found = []
        for stored in await self.store.unfinished():
            task = pb.Task.FromString(stored.task)
            options = json.loads(stored.options)
            found.append(
                Resumable(
                    stored=stored,
                    task=task,
                    params={p.key: json.loads(p.value_json) for p in task.parameters},
                    timeout_seconds=float(options.get("timeout_seconds", 0)),
                    pinned=options.get("pinned", ""),
                    retry=_retry_from(options),
                    idempotency_key=options.get("idempotency_key") or "",
                )
            )
        return found

    def _write(self, write: Coroutine[Any, Any, None]) -> None:
        # The store runs writes in the order they are made; keeping a reference lets drain() await them.
        pending = asyncio.ensure_future(write)
        self._writes.add(pending)
        pending.add_done_callback(self._writes.discard)


def _record(data: bytes | None) -> TaskRecord | None:
    return _convert.record_from_pb(pb.TaskRecord.FromString(data)) if data else None


def _options(job: Job, idempotency_key: str | None) -> str:
    """What a resumed task needs beyond its Task message."""
    return json.dumps(
        {
            "timeout_seconds": job.handle.timeout_seconds,
            "pinned": job.pinned,
            "idempotency_key": idempotency_key,
            "retry": _retry_fields(job.retry),
        }
    )


def _retry_fields(retry: RetryPolicy) -> dict[str, Any]:
    return {**asdict(retry), "non_retryable_errors": list(retry.non_retryable_errors)}


def _retry_from(options: dict[str, Any]) -> RetryPolicy | None:
    fields = options.get("retry")
    if not fields:
        return None
    return RetryPolicy(**{**fields, "non_retryable_errors": tuple(fields.get("non_retryable_errors", ()))})
