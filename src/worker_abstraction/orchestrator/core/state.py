"""What is known of one task: its updates in order, its attempts, which worker has it, whether it ended.

A `TaskState` is written by exactly one owner (the embedded engine's `TaskRun`, or the daemon client's
watcher) and read by any number of `AsyncTaskHandle`s. It holds no policy: deciding what an update means
(fencing, retries, cancel) is the owner's job.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from worker_abstraction.errors import WorkerAbstractionError
from worker_abstraction.exchanges import Approval, InputExchange
from worker_abstraction.options import caller_key
from worker_abstraction.types import Attempt, TaskRecord, TaskSpec, TaskStatus, TaskUpdate


class TaskState:
    """One task's updates and attempts, with a way to wait for the next change."""

    __slots__ = (
        "_broken",
        "_changed",
        "_chunks",
        "_done",
        "_ended",
        "_listeners",
        "attempt",
        "attempts",
        "capability",
        "chunk_bytes",
        "illegal_updates",
        "last_sequence",
        "params",
        "queue_timeout_seconds",
        "resumed",
        "stale_updates",
        "task_id",
        "timeout_seconds",
        "updates",
        "worker_address",
        "worker_id",
    )

    def __init__(
        self,
        task_id: str,
        capability: str,
        params: Mapping[str, Any],
        *,
        timeout_seconds: float = 0.0,
        queue_timeout_seconds: float | None = None,
    ) -> None:
        self.task_id = task_id
        self.capability = capability
        self.params = params
        self.timeout_seconds = timeout_seconds
        self.queue_timeout_seconds = queue_timeout_seconds
        self.worker_id = ""
        self.worker_address = ""
        self.updates: list[TaskUpdate] = []
        self.attempts: list[Attempt] = []  # every dispatch, with its worker, times and outcome
        self.attempt = 0  # the current attempt's number
        self.last_sequence = 0  # of the current attempt's updates, as its worker numbered them
        self.stale_updates = 0  # updates from an attempt given up on (a "zombie" worker), ignored
        self.illegal_updates = 0  # updates that would break the lifecycle table, ignored
        # Carried on from a store after a restart, or taken over from another daemon: its updates here are
        # numbered from 1 again, so a watcher of the run before hears them all (see `daemon.callers`).
        self.resumed = False
        self.chunk_bytes = 0  # of the streamed chunks kept in `updates`
        self._chunks: collections.deque[int] | None = None  # positions of the kept chunks, oldest first
        self._ended = False
        # Made only when someone waits: most tasks are followed through listeners, and a queued task is
        # held as long as it waits, so every byte of it counts a hundred thousand times.
        self._done: asyncio.Future[None] | None = None
        self._changed: asyncio.Future[None] | None = None
        self._broken: WorkerAbstractionError | None = None
        self._listeners: list[Callable[[int, TaskUpdate], None]] | None = None

    @property
    def status(self) -> TaskStatus:
        return self.updates[-1].status if self.updates else TaskStatus.PENDING

    @property
    def final(self) -> TaskUpdate | None:
        """The terminal update, once there is one."""
        return self.updates[-1] if self.updates and self.updates[-1].is_terminal else None

    @property
    def broken(self) -> WorkerAbstractionError | None:
        """Why this state stopped hearing about the task before it ended (None: it did not)."""
        return self._broken

    def done(self) -> bool:
        """No more updates will come: the task ended, or this state lost track of it."""
        return self._ended

    def append(self, update: TaskUpdate) -> None:
        """Record an update; a terminal one ends the task."""
        if self._ended:
            return
        self.updates.append(update)
        if update.chunk is not None:
            self._keep_chunk(update.chunk.size)
        if update.is_terminal:
            self._end_attempt(update)
            self._end()
        self._notify()
        if self._listeners:
            position = len(self.updates)
            for listener in list(self._listeners):
                listener(position, update)
            if update.is_terminal:  # nothing follows: what they hold is freed with them, not kept with the state
                self._listeners = None

    def _keep_chunk(self, size: int) -> None:
        """Count a chunk just appended; past MAX_CHUNK_BYTES the oldest chunks give way to one shared mark
        (a reader that falls that far behind is told which chunks it cannot have: `ChunksDroppedError`)."""
        if self._chunks is None:
            self._chunks = collections.deque()
        self._chunks.append(len(self.updates) - 1)
        self.chunk_bytes += size + CHUNK_OVERHEAD
        while self.chunk_bytes > MAX_CHUNK_BYTES and len(self._chunks) > 1:
            position = self._chunks.popleft()
            dropped = self.updates[position].chunk
            assert dropped is not None
            self.chunk_bytes -= dropped.size + CHUNK_OVERHEAD
            self.updates[position] = _dropped_mark(self.task_id)

    def listen(self, listener: Callable[[int, TaskUpdate], None], after: int = 0) -> None:
        """Call `listener(position, update)` for every update after position `after` (1-based): those there
        now at once, the rest as they come, until `unlisten(listener)`. (No stop function is made: the
        daemon holds a listener per followed task, queued ones included, and every byte counts.)"""
        for position in range(after + 1, len(self.updates) + 1):
            listener(position, self.updates[position - 1])
        if self._ended:
            return
        if self._listeners is None:
            self._listeners = []
        self._listeners.append(listener)

    def unlisten(self, listener: Callable[[int, TaskUpdate], None]) -> None:
        if self._listeners is not None and listener in self._listeners:
            self._listeners.remove(listener)

    def lose_track(self, error: WorkerAbstractionError) -> None:
        """Stop: the task's updates cannot be heard any more (readers get `error`)."""
        if not self._ended:
            self._broken = error
            self._end()
            self._notify()

    def begin_attempt(
        self, number: int, worker_id: str, worker_address: str, *, started_at: datetime | None = None
    ) -> None:
        """The task was handed to a worker as attempt `number` (at `started_at`; default now)."""
        if self.attempts and self.attempts[-1].number == number and self.attempts[-1].ended_at is None:
            self.attempts.pop()  # the same attempt handed to another worker before it started there
        self.attempt, self.last_sequence = number, 0
        self.worker_id, self.worker_address = worker_id, worker_address
        self.attempts.append(Attempt(number=number, worker_id=worker_id, started_at=started_at or datetime.now(UTC)))

    def end_attempt(self, status: TaskStatus, error_message: str = "") -> None:
        """The current attempt is over (it failed and the task goes on, or it never started)."""
        self._end_attempt(TaskUpdate(task_id=self.task_id, status=status, error_message=error_message))

    def forget_attempt(self) -> None:
        """The current attempt never reached its worker (it refused for capacity): take it back."""
        if self.attempts and self.attempts[-1].ended_at is None:
            self.attempts.pop()
        self.worker_id = self.worker_address = ""

    def _end_attempt(self, update: TaskUpdate) -> None:
        if self.attempts and self.attempts[-1].ended_at is None:
            last = self.attempts[-1]
            self.attempts[-1] = Attempt(
                last.number, last.worker_id, last.started_at, datetime.now(UTC), update.status, update.error_message
            )

    def _end(self) -> None:
        self._ended = True
        if self._done is not None:
            self._done.set_result(None)

    def _done_future(self) -> asyncio.Future[None]:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            if self._ended:
                self._done.set_result(None)
        return self._done

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call `callback()` soon after the task ends (soon, if it has)."""
        self._done_future().add_done_callback(lambda _: callback())

    async def wait_done(self) -> None:
        if not self._ended:
            await asyncio.shield(self._done_future())

    async def wait_changed(self) -> None:
        """Return after the next update (at once if the task already ended)."""
        if self._ended:
            return
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._changed)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set_result(None)
            self._changed = None


MAX_CHUNK_BYTES = 16 * 2**20  # of one task's streamed chunks kept for readers that fall behind
CHUNK_OVERHEAD = 200  # bytes a kept chunk costs besides its text
DROPPED = "wa-dropped"  # metadata key of the mark that stands where a chunk was dropped


@functools.lru_cache(maxsize=64)
def _dropped_mark(task_id: str) -> TaskUpdate:
    return TaskUpdate(task_id, TaskStatus.RUNNING, metadata={DROPPED: "chunk"})


def task_record(
    spec: TaskSpec,
    status: TaskStatus,
    *,
    attempts: Sequence[Attempt] = (),
    last_update: TaskUpdate | None = None,
    dead_lettered: bool = False,
    cancel_reason: str = "",
    inputs: tuple[InputExchange, ...] = (),
    approval: Approval | None = None,
    approval_required: bool = False,
    claimed_by: str = "",
) -> TaskRecord:
    """The record of the task submitted as `spec`, with what is known of how it went."""
    return TaskRecord(
        task_id=spec.task_id,
        capability=spec.capability,
        status=status,
        params=dict(spec.params),
        attempts=tuple(attempts),
        last_update=last_update,
        submitted_at=spec.created_at,
        dead_lettered=dead_lettered,
        cancel_reason=cancel_reason,
        idempotency_key=caller_key(spec.owner, spec.options.idempotency_key),
        owner=spec.owner,
        not_before=spec.options.not_before,
        inputs=inputs,
        approval=approval,
        approval_required=approval_required,
        claimed_by=claimed_by,
    )


def replayed(updates: Sequence[TaskUpdate], state: TaskState) -> None:
    """Fill a fresh state with updates already known (a finished task read back from a record)."""
    for update in updates:
        state.append(update)
