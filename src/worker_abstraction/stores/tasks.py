"""Where an orchestrator keeps the tasks it accepted, so that none is lost when it restarts.

The orchestrator writes three facts per task, each in one transaction: accepted (before the caller hears
"yes"), dispatched (which worker, which attempt), finished (the final update). After a restart, tasks
accepted but not finished are resumed: queued ones are queued again, dispatched ones are followed on
their worker (or retried if the worker lost them).
"""

from __future__ import annotations

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


class TaskStore(Protocol):
    """What the orchestrator needs from durable storage."""

    async def accepted(self, task_id: str, task: bytes, options: str) -> None: ...

    async def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None: ...

    async def requeued(self, task_id: str) -> None: ...

    async def finished(self, task_id: str, final: bytes) -> None: ...

    async def unfinished(self) -> list[StoredTask]: ...

    async def close(self) -> None: ...


class MemoryTaskStore:
    """Keeps nothing across restarts: the default for an orchestrator embedded in a program."""

    async def accepted(self, task_id: str, task: bytes, options: str) -> None:
        return None

    async def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        return None

    async def requeued(self, task_id: str) -> None:
        return None

    async def finished(self, task_id: str, final: bytes) -> None:
        return None

    async def unfinished(self) -> list[StoredTask]:
        return []

    async def close(self) -> None:
        return None
