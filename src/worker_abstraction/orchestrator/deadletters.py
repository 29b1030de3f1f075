"""The dead-letter queue: tasks that failed for good after retryable failures, with their history."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from worker_abstraction.options import TaskOptions
from worker_abstraction.orchestrator.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.scheduler import Job
from worker_abstraction.types import DeadLetter, TaskUpdate

logger = logging.getLogger(__name__)


class DeadLetterQueue:
    """Kept in memory, oldest first."""

    def __init__(self) -> None:
        self._letters: dict[str, DeadLetter] = {}

    def add(self, job: Job, handle: AsyncTaskHandle, final: TaskUpdate) -> DeadLetter:
        options = TaskOptions(
            timeout_seconds=job.task.timeout_seconds,
            priority=job.task.priority,
            fairness_key=job.task.fairness_key,
            required_tags=tuple(job.task.required_tags),
            preferred_tags=tuple(job.task.preferred_tags),
            worker_id=job.pinned,
            metadata=dict(job.task.metadata),
            retry_policy=job.retry,
        )
        letter = self._letters[handle.task_id] = DeadLetter(
            task_id=handle.task_id,
            capability=job.capability,
            params=dict(handle.params),
            attempts=tuple(handle.attempts),
            error_message=final.error_message,
            options=options,
        )
        logger.warning("task %s dead-lettered after %d attempt(s): %s", handle.task_id, len(handle.attempts),
                       final.error_message, extra={"task_id": handle.task_id})  # fmt: skip
        return letter

    def restore(self, letters: Iterable[DeadLetter]) -> None:
        """Put back letters kept by a durable store (after a restart)."""
        for letter in letters:
            self._letters[letter.task_id] = letter

    def list(self) -> list[DeadLetter]:
        return list(self._letters.values())

    def take(self, task_id: str) -> DeadLetter | None:
        return self._letters.pop(task_id, None)

    def purge(self, task_ids: Iterable[str] | None = None) -> tuple[str, ...]:
        """Drop letters (all, or those given); returns the ids dropped."""
        ids = tuple(self._letters) if task_ids is None else tuple(i for i in task_ids if i in self._letters)
        for task_id in ids:
            del self._letters[task_id]
        return ids
