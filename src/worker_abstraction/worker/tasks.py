"""A worker's tasks: each one's update log, and the log's guarantees to subscribers.

Every state change of a task is appended to its log with the next sequence number (1, 2, 3, ...). A
subscriber reads the log by position, so a reconnecting subscriber that says "after N" gets exactly the
updates it has not seen: no gap, no repeat, and no sleep needed to avoid the race between "task finished"
and "subscriber connected".

A log is bounded: a handler that streams output (or reports progress) without end would otherwise grow its
worker's memory until the task ends. Past `KEEP_BYTES` of outputs, chunks and progress messages (or
`KEEP_UPDATES` updates), the oldest updates are dropped, a quarter of the budget at a time; a subscriber that
asks to resume before what is kept is refused (`ResumeOutOfRangeError`: OUT_OF_RANGE on the wire, naming the
first update still kept), never handed a log with a hole in it. Live subscribers, who read each update as it
comes, never notice.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

from worker_abstraction import _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.exchanges import SUSPENDED, InputAnswer, InputRequest, OutputChunk
from worker_abstraction.lifecycle import attempt_allowed
from worker_abstraction.types import TaskFailure, TaskStatus


class IllegalTransitionError(RuntimeError):
    """A task was moved between two states `lifecycle.ATTEMPT_TRANSITIONS` does not connect (a worker bug)."""


class ResumeOutOfRangeError(ValueError):
    """A subscriber asked to resume after a sequence number the task never produced, or whose updates are no
    longer kept (see the module docstring)."""


class TaskRecord:
    """One task's update log."""

    __slots__ = (
        "_changed",
        "_kept",
        "_progress",
        "_status",
        "attempt",
        "cancel_reason",
        "cancel_requested",
        "capability",
        "chunks",
        "fingerprint",
        "first",
        "listener",
        "log",
        "questions",
        "suspended",
        "task_id",
        "worker_id",
    )

    def __init__(self, task_id: str, capability: str, worker_id: str, attempt: int = 0, fingerprint: int = 0) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.fingerprint = fingerprint  # admission.fingerprint of the delivery that made this record
        self.capability = capability
        self.worker_id = worker_id
        self.log: list[pb.TaskResult] = []
        self.first = 1  # the sequence number of log[0] (more than 1 once the oldest updates were dropped)
        self._kept = 0  # the bytes the log holds, as `_weight` counts them
        # Push delivery for the task channel (the fast path): called with each new update, no task per reader.
        self.listener: Callable[[pb.TaskResult], None] | None = None
        self._changed: asyncio.Future[None] | None = None
        self.cancel_requested = asyncio.Event()  # what the handler's context watches
        self.cancel_reason = ""
        self._progress: tuple[float, str] = (0.0, "")  # the latest progress reported: later updates carry it on
        self.chunks = 0  # streamed so far (`ctx.emit`): the next one is numbered one more
        self.questions: Any = None  # the handler's questions (`asking.Questions`), once its context is made
        self.suspended = False  # it ended at a question that frees the slot (see `suspend`)
        self._append(TaskStatus.PENDING)

    @property
    def status(self) -> TaskStatus:
        return self._status

    @property
    def is_terminal(self) -> bool:
        """Whether the attempt is over here: ended, or suspended at a question (`suspend`)."""
        return self._status.is_terminal or self.suspended

    def running(self) -> None:
        self._move(TaskStatus.RUNNING)

    def progress(self, fraction: float, message: str) -> None:
        # A late report from a handler that already finished (e.g. a thread outliving its timeout) is moot.
        if self.status is TaskStatus.RUNNING:
            self._progress = (fraction, message)
            self._append(TaskStatus.RUNNING, progress=fraction, progress_message=message)

    def chunk(self, text: str, data_json: str, last: bool) -> bool:
        """Stream one piece of output as a RUNNING update (False: the task no longer runs, nothing sent)."""
        if self.status is not TaskStatus.RUNNING:
            return False
        self.chunks += 1
        fraction, message = self._progress
        chunk = OutputChunk(self.chunks, text, data_json, last)
        self._append(TaskStatus.RUNNING, chunk=chunk, progress=fraction, progress_message=message)
        return True

    def ask(self, request: InputRequest) -> None:
        """The handler asks for input: INPUT_REQUIRED until it is answered (or gives up waiting)."""
        fraction, message = self._progress
        self._move(TaskStatus.INPUT_REQUIRED, input_request=request, progress=fraction, progress_message=message)

    def suspend(self, request: InputRequest) -> None:
        """The handler asks a question that frees the slot: the attempt ends here, INPUT_REQUIRED, marked so."""
        self.suspended = True
        self._move(TaskStatus.INPUT_REQUIRED, input_request=request, metadata={SUSPENDED: "1"})

    def answered(self, answer: InputAnswer | None) -> None:
        """The handler goes on: with `answer`, or without one (it stopped waiting)."""
        if self.status is TaskStatus.INPUT_REQUIRED:
            fraction, message = self._progress
            self._move(TaskStatus.RUNNING, input_answer=answer, progress=fraction, progress_message=message)

    def completed(self, output_json: str) -> None:
        self._move(TaskStatus.COMPLETED, output_json=output_json, progress=1.0)

    def failed(self, failure: TaskFailure) -> None:
        """End the attempt FAILED; `error_message` is the failure's "Type: message" line."""
        self._move(TaskStatus.FAILED, error_message=failure.text, failure=failure)

    def canceled(self, failure: TaskFailure) -> None:
        """End the attempt CANCELED; `error_message` is the failure's message alone (the cancel reason).

        The contract records CancelTaskRequest.reason as the CANCELED update's error_message, and seed
        orchestrators show it as it is, so no "Type: " prefix here.
        """
        self._move(TaskStatus.CANCELED, error_message=failure.message, failure=failure)

    def _move(self, status: TaskStatus, **fields: object) -> None:
        if not attempt_allowed(self.status, status):
            raise IllegalTransitionError(f"task {self.task_id}: {self.status.name} -> {status.name}")
        self._append(status, **fields)

    @property
    def held_bytes(self) -> int:
        """About how many bytes the log holds (outputs, chunks, progress messages, and each update's own)."""
        return self._kept

    @property
    def last_sequence(self) -> int:
        """The sequence number of the latest update."""
        return self.first + len(self.log) - 1

    def _append(self, status: TaskStatus, **fields: object) -> None:
        update = _convert.task_result(
            self.task_id,
            status,
            sequence=self.first + len(self.log),
            worker_id=self.worker_id,
            attempt=self.attempt,
            **fields,  # type: ignore[arg-type]
        )
        self.log.append(update)
        self._kept += _weight(update)
        if self._kept > KEEP_BYTES or len(self.log) > KEEP_UPDATES:
            self._drop_oldest()
        self._status = status  # kept as the enum: read on every move, never rebuilt from the message
        if self.listener is not None:
            self.listener(update)
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    def _drop_oldest(self) -> None:
        """Drop the oldest updates until the log holds at most three quarters of either budget (the latest one
        is always kept)."""
        dropped, freed = 0, 0
        while dropped < len(self.log) - 1 and (
            self._kept - freed > KEEP_BYTES * 3 // 4 or len(self.log) - dropped > KEEP_UPDATES * 3 // 4
        ):
            freed += _weight(self.log[dropped])
            dropped += 1
        del self.log[:dropped]
        self.first += dropped
        self._kept -= freed

    def _not_kept(self, what: str) -> ResumeOutOfRangeError:
        return ResumeOutOfRangeError(
            f"{what} (a worker keeps the latest {KEEP_BYTES // 2**20} MiB of a task's output, chunks and progress, "
            f"and {KEEP_UPDATES:,} updates); resume after {self.first - 1} or later"
        )

    async def follow(self, after_sequence: int = 0, *, from_start: bool = False) -> AsyncIterator[pb.TaskResult]:
        """Yield the current update (or those after `after_sequence`, or all with `from_start`), then each
        new one, up to the terminal one.

        Raises:
            ResumeOutOfRangeError: `after_sequence` is past the latest update, or the updates after it (or
                all of them, with `from_start`) are no longer all kept.
        """
        last = self.last_sequence
        if after_sequence < 0 or after_sequence > last:
            raise ResumeOutOfRangeError(f"after_sequence {after_sequence} is outside 0..{last} for task {self.task_id}")
        if (after_sequence > 0 or from_start) and after_sequence < self.first - 1:
            raise self._not_kept(
                f"updates {after_sequence + 1}..{self.first - 1} of task {self.task_id} are no longer kept"
            )
        following = after_sequence + 1 if after_sequence > 0 or from_start else last  # the next one to yield
        while True:
            while following <= self.last_sequence:
                if following < self.first:  # (a reader slower than the handler: what it needs next was dropped)
                    raise self._not_kept(f"update {following} of task {self.task_id} was dropped before it was read")
                update = self.log[following - self.first]
                following += 1
                yield update
                if TaskStatus(update.status).is_terminal or (update.metadata and SUSPENDED in update.metadata):
                    return
            if self.is_terminal:
                return
            if self._changed is None:
                self._changed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._changed)


KEEP_FINISHED_BYTES = 64 * 2**20  # outputs of finished tasks kept for late readers (StreamTaskStatus)
KEEP_BYTES = 16 * 2**20  # of one task's outputs, chunks and progress messages kept for resumes (see the docstring)
KEEP_UPDATES = 100_000  # updates of one task kept for resumes
_UPDATE_WEIGHT = 64  # what an update costs besides its texts (an estimate)


def _weight(update: pb.TaskResult) -> int:
    """About how many bytes an update holds: its output, its chunk's text and data, its progress message."""
    chunk = update.chunk
    texts = len(update.output_json) + len(chunk.text) + len(chunk.data_json) + len(update.progress_message)
    return texts + _UPDATE_WEIGHT


class TaskTable:
    """All tasks a worker knows: the live ones, and a bounded window of finished ones for late readers.

    A task id maps to its latest record. A record may be replaced by a newer one of the same id (a retry, or
    a new task reusing the id) as soon as it is terminal, which can be before `finish` is called for it:
    `finish` of a replaced record still settles the counters but leaves the id's entries to its successor.
    """

    def __init__(self, *, keep_finished: int = 10_000) -> None:
        self._tasks: dict[str, TaskRecord] = {}
        # Ids whose current record is finished, oldest first, with the bytes of output its log holds: the window
        # ends at `keep_finished` records or KEEP_FINISHED_BYTES, whichever comes first (outputs may be large).
        self._finished: OrderedDict[str, int] = OrderedDict()
        self._finished_bytes = 0
        self._keep_finished = keep_finished
        self.active = 0
        self.peak = 0  # the most tasks ever running at once
        self.active_by_capability: dict[str, int] = {}

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._tasks

    def get(self, task_id: str) -> TaskRecord | None:
        return self._tasks.get(task_id)

    def add(self, record: TaskRecord) -> None:
        """Count a new record as running; it replaces any earlier record of its id."""
        self._finished_bytes -= self._finished.pop(record.task_id, 0)  # the id is live again: not the eviction's
        self._tasks[record.task_id] = record
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.active_by_capability[record.capability] = self.active_by_capability.get(record.capability, 0) + 1

    def finish(self, record: TaskRecord) -> None:
        """Count a record as no longer running (once per record added)."""
        self.active -= 1
        self.active_by_capability[record.capability] -= 1
        if self._tasks.get(record.task_id) is not record:
            return  # replaced already: the id belongs to a newer record, maybe still running
        held = record.held_bytes
        self._finished[record.task_id] = held
        self._finished_bytes += held
        while len(self._finished) > self._keep_finished or (
            self._finished_bytes > KEEP_FINISHED_BYTES and len(self._finished) > 1
        ):
            oldest, size = self._finished.popitem(last=False)
            self._finished_bytes -= size
            self._tasks.pop(oldest, None)
