"""Where an orchestrator keeps the tasks it accepted, so that none is lost when it restarts.

The orchestrator writes each fact about a task in one transaction: accepted (before the caller hears
"yes"), dispatched (which worker, which attempt), requeued, cancel requested, finished (the whole record:
outcome and attempts). After a restart, tasks accepted but not finished are resumed: queued ones are
queued again, dispatched ones are followed on their worker (or retried if the worker lost them), and
a cancel asked for before the restart is carried out. Finished tasks and dead letters stay readable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from worker_abstraction.types import TaskQuery


@dataclass(frozen=True, slots=True)
class StoredTask:
    """An unfinished task as the store keeps it."""

    task_id: str
    task: bytes  # the serialized SubmitTaskRequest (a store written by an older version: a Task)
    options: str  # JSON: {"format": 2} for the above (older versions: what execute_task was given)
    worker_id: str = ""  # empty while it waits for a worker
    worker_address: str = ""
    attempt: int = 0  # the highest attempt number ever sent (stored before it is sent)
    cancel_reason: str = ""  # a cancel was asked for and is to be carried out
    failures: int = 0  # attempts that ran and failed so far (what the retry budget counts)
    reserved: int = 0  # attempt numbers up to this one may have been sent (stored before any is)
    dispatched_at: float = 0.0  # when the attempt on `worker_id` was sent (epoch seconds; 0: unknown)
    answers: str = ""  # the answers a slot-freeing wait was given so far (`exchanges.ANSWERS`; "": none)


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    entry: bytes  # the serialized DeadLetterEntry
    options: str  # JSON (unused since format 2: the entry carries its submission)


class TaskStore(Protocol):
    """What the orchestrator needs from durable storage.

    A write is queued when it is called (not when it is awaited), and writes are carried out in the order
    they are called; awaiting one waits until it is durable. A write the orchestrator does not wait for
    costs no task of its own.
    """

    def accepted(
        self,
        task_id: str,
        task: bytes,
        options: str,
        *,
        capability: str = "",
        idempotency_key: str = "",
        reserved: int = 0,
        owner: str = "",
    ) -> Awaitable[None]: ...

    def reserve(self, task_id: str, up_to: int) -> Awaitable[None]:
        """Attempt numbers up to `up_to` may be sent from now on."""

    def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> Awaitable[None]: ...

    def requeued(self, task_id: str, attempt: int = 0, failures: int = 0) -> Awaitable[None]: ...

    def cancel_requested(self, task_id: str, reason: str) -> Awaitable[None]: ...

    def answered(self, task_id: str, answers: str) -> Awaitable[None]:
        """The answers a task's questions were given while no worker held it (`exchanges.ANSWERS`, all so far)."""

    def finished(self, task_id: str, record: bytes, status: int, worker_id: str = "") -> Awaitable[None]:
        """The task ended: `record` is its serialized TaskRecord, `status` its final TaskStatus, `worker_id` the
        worker of its latest attempt (what a listing filters on)."""

    async def unfinished(self) -> list[StoredTask]: ...

    async def finished_record(self, task_id: str) -> bytes | None: ...

    async def finished_by_key(self, idempotency_key: str) -> bytes | None: ...

    async def submission(self, task_id: str) -> StoredTask | None:
        """The task as it was accepted, finished or not (its `task` and `options`; None: unknown)."""

    async def finished_records(self, query: TaskQuery, *, limit: int, offset: int) -> list[bytes]:
        """Serialized TaskRecords of finished tasks that match `query`'s filters (its own page is not read:
        `limit` and `offset` are), most recently accepted first."""

    def dead_lettered(self, task_id: str, entry: bytes, options: str) -> Awaitable[None]: ...

    def dead_letters_removed(self, task_ids: Sequence[str]) -> Awaitable[None]: ...

    async def dead_letters(self) -> list[StoredDeadLetter]: ...

    async def close(self) -> None: ...


Stored = Callable[[BaseException | None], None]  # told once a fact is durable: None, or why it could not be


class PromptTaskStore(TaskStore, Protocol):
    """A TaskStore that tells whoever waits for an acceptance as soon as it is durable, without the turn of
    the loop an awaitable's callbacks take, and makes what is waited for durable at once when asked (as
    `SqliteTaskStore` does): the daemon's sessions then answer submissions sooner. A store with `flush` is
    taken to be one; others are used through the awaitables `TaskStore` returns.
    """

    def accepted(
        self,
        task_id: str,
        task: bytes,
        options: str,
        *,
        capability: str = "",
        idempotency_key: str = "",
        reserved: int = 0,
        owner: str = "",
        then: Stored | None = None,
    ) -> Awaitable[None]:
        """As `TaskStore.accepted`; `then(None)` (or `then(error)`) is called as the write is made durable."""

    def flush(self) -> None:
        """Make durable now, if it can be done at once, what is waited for (see SqliteTaskStore.flush)."""
