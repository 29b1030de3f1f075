"""The facts a task's run writes as it goes (its journal), and what a home gives back to resume a task.

What is awaited and what is not: "accepted" and "cancel requested" are stored before the caller hears
"yes". Attempt numbers are reserved before any is sent (acceptance reserves the first `ATTEMPT_BLOCK`, a
later attempt past them reserves the next block first), so a task resumed after a crash gets a number
beyond any that may have been sent: no number ever runs twice. The rest (dispatched, requeued, finished,
dead letters) is written behind, in order, with one exception: an attempt number a worker refused (it was
full) and that is sent again, to another worker perhaps, is sent only once the fact naming that worker is
stored (`dispatching`), so that a daemon resuming the task after a crash never looks for the attempt on the
worker that refused it while it runs on another. Each home writes them its own way (see `homes`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from worker_abstraction.stores.tasks import Stored
from worker_abstraction.types import DeadLetter, TaskQuery, TaskRecord, TaskSpec


@dataclass(frozen=True, slots=True)
class Resumable:
    """An unfinished task read back from the store."""

    spec: TaskSpec
    worker_id: str  # empty: it was waiting for a worker
    worker_address: str
    attempt: int  # the attempt last stored as sent (followed on `worker_id` if there is one)
    reserved: int  # attempt numbers up to this one may have been sent: the next one is above both
    failures: int
    cancel_reason: str
    dispatched_at: float = 0.0  # when the attempt on `worker_id` was sent (epoch seconds; 0: unknown)
    answers: str = ""  # the answers a slot-freeing wait was given so far (`exchanges.ANSWERS`; "": none)


class Recorded(Protocol):
    @property
    def spec(self) -> TaskSpec: ...

    def record(self) -> TaskRecord: ...


def tell(then: Stored, stored: asyncio.Future[None]) -> None:
    """`then` of how `stored` ended (a future's done callback)."""
    then(asyncio.CancelledError() if stored.cancelled() else stored.exception())


ATTEMPT_BLOCK = 3  # attempt numbers reserved at a time (the default retry policy never needs a second block)


class Journal(Protocol):
    async def accepted(self, spec: TaskSpec) -> None:
        """Stored before the caller hears "accepted"; reserves attempts 1 to ATTEMPT_BLOCK."""
        ...

    def accepted_soon(self, spec: TaskSpec, then: Stored) -> None:
        """`accepted` without a coroutine: `then(None)` once it is stored, `then(error)` if it cannot be;
        called as the store's commit ends (not a turn of the loop later), at once if there is nothing to store."""
        ...

    def flush(self) -> None:
        """Store now what is waited for rather than on the loop's next turn, if that can be done at once."""
        ...

    async def reserve(self, task_id: str, up_to: int) -> None:
        """Stored before attempt numbers up to `up_to` are sent."""
        ...

    def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None: ...

    async def dispatching(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        """`dispatched`, stored (after every fact of the task written before it) before this returns."""
        ...

    def requeued(self, task_id: str, attempt: int, failures: int) -> None: ...

    async def cancel_requested(self, task_id: str, reason: str) -> None: ...

    async def answered(self, task_id: str, answers: str) -> None:
        """Stored before an answer to a wait that freed the slot is taken: every answer so far (`ANSWERS`), sent
        with the task again after a restart."""
        ...

    def finished(self, task: Recorded) -> None:
        """The task ended (its record is made only if it is kept)."""
        ...

    def dead_lettered(self, letter: DeadLetter) -> None: ...

    def dead_letters_removed(self, task_ids: Sequence[str]) -> None: ...

    async def dead_letters(self) -> list[DeadLetter]: ...

    async def unfinished(self) -> list[Resumable]: ...

    async def finished_record(self, task_id: str) -> TaskRecord | None: ...

    async def finished_by_key(self, idempotency_key: str) -> TaskRecord | None: ...

    async def submission(self, task_id: str) -> TaskSpec | None:
        """The task as it was submitted (options included), finished or not; None: not kept here."""
        ...

    async def finished_records(self, query: TaskQuery, *, limit: int, offset: int) -> list[TaskRecord]:
        """Finished tasks' records that match `query`'s filters, the page [offset, offset + limit) of them
        (`query`'s own page is not read), most recently accepted first."""
        ...

    async def drain(self) -> None:
        """Wait for every write made so far."""
        ...
