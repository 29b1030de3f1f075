"""The dead-letter queue: tasks that failed for good after retryable failures, with their history."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace

from worker_abstraction.options import RetryPolicy
from worker_abstraction.types import Attempt, DeadLetter, TaskSpec

logger = logging.getLogger(__name__)


def dead_letter(spec: TaskSpec, retry: RetryPolicy, attempts: Sequence[Attempt], error_message: str) -> DeadLetter:
    """The dead letter of a task that failed for good after retryable failures (logged as such)."""
    letter = DeadLetter(
        task_id=spec.task_id,
        capability=spec.capability,
        params=dict(spec.params),
        attempts=tuple(attempts),
        error_message=error_message,
        # Resubmitted as it ran (its retry policy included), but as a new task: a new id, no old key.
        options=replace(spec.options, task_id="", idempotency_key="", retry_policy=retry),
        owner=spec.owner,
    )
    logger.warning(
        "task %s dead-lettered after %d attempt(s): %s", spec.task_id, len(attempts), error_message,
        extra={"task_id": spec.task_id},
    )  # fmt: skip
    return letter


class DeadLetterQueue:
    """Kept in memory, oldest first (a durable journal keeps a copy)."""

    def __init__(self) -> None:
        self._letters: dict[str, DeadLetter] = {}

    def keep(self, letter: DeadLetter) -> None:
        self._letters[letter.task_id] = letter

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
