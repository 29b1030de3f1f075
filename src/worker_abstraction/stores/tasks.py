"""Where an orchestrator keeps the tasks it accepted, so that none is lost when it restarts.

The orchestrator writes each fact about a task in one transaction: accepted (before the caller hears
"yes"), dispatched (which worker, which attempt), requeued, cancel requested, finished (the whole record:
outcome and attempts). After a restart, tasks accepted but not finished are resumed: queued ones are
queued again, dispatched ones are followed on their worker (or retried if the worker lost them), and
a cancel asked for before the restart is carried out. Finished tasks and dead letters stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredTask:
    """An unfinished task as the store keeps it."""

    task_id: str
    task: bytes  # the serialized Task
    options: str  # JSON: what execute_task was given beyond the Task itself
    worker_id: str = ""  # empty while it waits for a worker
    worker_address: str = ""
    attempt: int = 0
    cancel_reason: str = ""  # a cancel was asked for and is to be carried out


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    entry: bytes  # the serialized DeadLetterEntry
    options: str  # JSON: how to submit it again


class TaskStore(Protocol):
    """What the orchestrator needs from durable storage."""

    async def accepted(
        self, task_id: str, task: bytes, options: str, *, capability: str = "", idempotency_key: str = ""
    ) -> None: ...

    async def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None: ...

    async def requeued(self, task_id: str) -> None: ...

    async def cancel_requested(self, task_id: str, reason: str) -> None: ...

    async def finished(self, task_id: str, record: bytes, status: int) -> None:
        """The task ended: `record` is its serialized TaskRecord, `status` its final TaskStatus."""

    async def unfinished(self) -> list[StoredTask]: ...

    async def finished_record(self, task_id: str) -> bytes | None: ...

    async def finished_by_key(self, idempotency_key: str) -> bytes | None: ...

    async def finished_records(
        self, *, statuses: Sequence[int], capability: str, limit: int, offset: int
    ) -> list[bytes]:
        """Serialized TaskRecords of finished tasks, most recently accepted first."""

    async def dead_lettered(self, task_id: str, entry: bytes, options: str) -> None: ...

    async def dead_letters_removed(self, task_ids: Sequence[str]) -> None: ...

    async def dead_letters(self) -> list[StoredDeadLetter]: ...

    async def close(self) -> None: ...


class MemoryTaskStore:
    """Keeps nothing across restarts: the default for an orchestrator embedded in a program.

    (The orchestrator itself remembers recently finished tasks and its dead letters while it runs.)
    """

    async def accepted(
        self, task_id: str, task: bytes, options: str, *, capability: str = "", idempotency_key: str = ""
    ) -> None:
        return None

    async def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        return None

    async def requeued(self, task_id: str) -> None:
        return None

    async def cancel_requested(self, task_id: str, reason: str) -> None:
        return None

    async def finished(self, task_id: str, record: bytes, status: int) -> None:
        return None

    async def unfinished(self) -> list[StoredTask]:
        return []

    async def finished_record(self, task_id: str) -> bytes | None:
        return None

    async def finished_by_key(self, idempotency_key: str) -> bytes | None:
        return None

    async def finished_records(
        self, *, statuses: Sequence[int], capability: str, limit: int, offset: int
    ) -> list[bytes]:
        return []

    async def dead_lettered(self, task_id: str, entry: bytes, options: str) -> None:
        return None

    async def dead_letters_removed(self, task_ids: Sequence[str]) -> None:
        return None

    async def dead_letters(self) -> list[StoredDeadLetter]:
        return []

    async def close(self) -> None:
        return None
