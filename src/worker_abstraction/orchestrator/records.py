"""Task records: what an orchestrator can tell about any task it accepted, finished or not.

Unfinished tasks are read from their live jobs; finished ones from a bounded memory of recent ones and,
with a durable store, from the store (which keeps them all).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from worker_abstraction import _convert
from worker_abstraction.orchestrator.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.journal import TaskJournal
from worker_abstraction.orchestrator.scheduler import Job
from worker_abstraction.types import TaskRecord, TaskStatus, TaskUpdate


def record_of(job: Job) -> TaskRecord:
    """The record of a job as it stands now."""
    handle = job.handle
    return TaskRecord(
        task_id=handle.task_id,
        capability=job.capability,
        status=handle.status,
        params=dict(handle.params),
        attempts=tuple(handle.attempts),
        last_update=handle.updates[-1] if handle.updates else None,
        submitted_at=_convert.from_timestamp(job.task.created_at),
        dead_lettered=job.dead_lettered,
        cancel_reason=job.cancel_reason,
        idempotency_key=job.idempotency_key,
    )


def statuses_of(status: TaskStatus | Iterable[TaskStatus] | None) -> list[TaskStatus]:
    """A status filter as a list (empty: any status)."""
    return [status] if isinstance(status, TaskStatus) else list(status or ())


def finished_handle(record: TaskRecord) -> AsyncTaskHandle:
    """A handle on a task that finished before this orchestrator started: it replays the final update."""
    handle = AsyncTaskHandle(
        task_id=record.task_id, capability=record.capability, params=record.params, timeout_seconds=0
    )
    handle.attempts = list(record.attempts)
    if record.attempts:
        handle.worker_id = record.attempts[-1].worker_id
        handle.attempt = record.attempts[-1].number
    final = record.last_update or TaskUpdate(task_id=record.task_id, status=record.status)
    handle.updates.append(final)
    handle.finish()
    return handle


class TaskRecords:
    """Finished tasks' records: the latest `keep_finished` in memory, all of them in a durable store."""

    def __init__(self, journal: TaskJournal, *, keep_finished: int = 10_000) -> None:
        self._journal = journal
        self._keep = keep_finished
        # Finished jobs, whose records are made only when asked for (the hot path just keeps a reference);
        # their handles also let a late watcher replay every update of a recent task.
        self._recent: OrderedDict[str, Job] = OrderedDict()

    def finished(self, job: Job) -> None:
        self._recent[job.task.task_id] = job
        while len(self._recent) > self._keep:
            self._recent.popitem(last=False)
        if self._journal.durable:
            self._journal.finished(record_of(job))

    def recent_handle(self, task_id: str) -> AsyncTaskHandle | None:
        job = self._recent.get(task_id)
        return job.handle if job is not None else None

    async def get(self, task_id: str) -> TaskRecord | None:
        job = self._recent.get(task_id)
        record = record_of(job) if job is not None else None
        if record is None and self._journal.durable:
            record = await self._journal.finished_record(task_id)
        return record

    async def by_key(self, idempotency_key: str) -> TaskRecord | None:
        """The finished task submitted with this idempotency key, if the store still has it."""
        if not self._journal.durable:
            return None
        await self._journal.drain()  # a record written a moment ago must be found
        return await self._journal.finished_by_key(idempotency_key)

    async def page(
        self,
        live: Iterable[Job],
        *,
        statuses: Iterable[TaskStatus] = (),
        capability: str = "",
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[TaskRecord], bool]:
        """Records, most recently submitted first; True when more follow this page."""
        wanted = frozenset(statuses)
        fetch = offset + limit + 1

        def keep(record: TaskRecord) -> bool:
            return (not wanted or record.status in wanted) and (not capability or record.capability == capability)

        found = {r.task_id: r for r in (record_of(job) for job in live) if keep(r)}
        for record in map(record_of, reversed(self._recent.values())):
            if keep(record):
                found.setdefault(record.task_id, record)
        if self._journal.durable:
            await self._journal.drain()
            stored = await self._journal.finished_records(
                statuses=sorted(wanted), capability=capability, limit=fetch, offset=0
            )
            for record in stored:
                found.setdefault(record.task_id, record)
        ordered = sorted(found.values(), key=_newest_first)
        return ordered[offset : offset + limit], len(ordered) > offset + limit


def _newest_first(record: TaskRecord) -> tuple[float, str]:
    return (-(record.submitted_at.timestamp() if record.submitted_at else 0.0), record.task_id)
