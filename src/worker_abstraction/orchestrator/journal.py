"""The orchestrator's journal: each task's facts written to a TaskStore in order, and read back after a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from worker_abstraction import _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.orchestrator.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.retry import RetryPolicy
from worker_abstraction.orchestrator.scheduler import Job
from worker_abstraction.stores.tasks import MemoryTaskStore, StoredTask, TaskStore


@dataclass(frozen=True, slots=True)
class Resumable:
    """An unfinished task read back from the store, ready to be rebuilt into a job."""

    stored: StoredTask
    task: pb.Task
    params: dict[str, Any]
    timeout_seconds: float
    pinned: str
    retry: RetryPolicy | None


class TaskJournal:
    """Writes "accepted", "dispatched", "requeued" and "finished" for every task when the store is durable."""

    def __init__(self, store: TaskStore | None) -> None:
        self.store: TaskStore = store or MemoryTaskStore()
        self.durable = store is not None and not isinstance(store, MemoryTaskStore)
        self._writes: set[asyncio.Future[None]] = set()

    async def accepted(self, job: Job, idempotency_key: str | None) -> None:
        """Awaited before the caller hears "accepted": a crash after it cannot lose the task."""
        await self.store.accepted(job.task.task_id, job.task.SerializeToString(), _options(job, idempotency_key))

    def dispatched(self, job: Job) -> None:
        handle = job.handle
        self._write(self.store.dispatched(job.task.task_id, handle.worker_id, handle.worker_address, job.task.attempt))

    def requeued(self, job: Job) -> None:
        self._write(self.store.requeued(job.task.task_id))

    def finished(self, handle: AsyncTaskHandle) -> None:
        final = handle.updates[-1] if handle.updates else None
        self._write(
            self.store.finished(handle.task_id, _convert.update_to_pb(final).SerializeToString() if final else b"")
        )

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
                )
            )
        return found

    def _write(self, write: Coroutine[Any, Any, None]) -> None:
        # The store runs writes in the order they are made; keeping a reference lets drain() await them.
        pending = asyncio.ensure_future(write)
        self._writes.add(pending)
        pending.add_done_callback(self._writes.discard)


def _options(job: Job, idempotency_key: str | None) -> str:
    """What a resumed task needs beyond its Task message."""
    retry = job.retry
    return json.dumps(
        {
            "timeout_seconds": job.handle.timeout_seconds,
            "pinned": job.pinned,
            "idempotency_key": idempotency_key,
            "retry": {
                "max_attempts": retry.max_attempts,
                "initial_backoff_seconds": retry.initial_backoff_seconds,
                "backoff_multiplier": retry.backoff_multiplier,
                "max_backoff_seconds": retry.max_backoff_seconds,
                "jitter": retry.jitter,
                "retry_task_errors": retry.retry_task_errors,
                "non_retryable_errors": list(retry.non_retryable_errors),
            },
        }
    )


def _retry_from(options: dict[str, Any]) -> RetryPolicy | None:
    fields = options.get("retry")
    if not fields:
        return None
    return RetryPolicy(**{**fields, "non_retryable_errors": tuple(fields.get("non_retryable_errors", ()))})
