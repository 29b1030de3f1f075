"""The runs an engine has: the live ones, and a bounded memory of the recently finished ones (a task's home
keeps the others)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from worker_abstraction.codec import payload_bytes
from worker_abstraction.errors import TaskNotWaitingError
from worker_abstraction.exchanges import InputAnswer
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.phase import Phase
from worker_abstraction.orchestrator.core.state import CHUNK_OVERHEAD, TaskState
from worker_abstraction.types import TaskQuery, TaskRecord, TaskSpec, TaskUpdate

# Finished runs kept in memory stop at this many bytes of arguments and outputs too (an estimate), not only at
# `keep_finished`: 10,000 tasks of a megabyte each would otherwise hold tens of gigabytes. A store keeps them all.
KEEP_FINISHED_BYTES = 64 * 2**20


class _Finished:
    """The owner of a handle on a task that ended before this orchestrator started: nothing to cancel."""

    __slots__ = ("task_id",)

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id

    async def cancel(self, reason: str) -> bool:
        return False

    async def provide_input(self, value_json: str, *, request_id: str = "", answered_by: str = "") -> InputAnswer:
        raise TaskNotWaitingError(self.task_id, "has finished: it waits for no input")


def finished_handle(record: TaskRecord, chunks: Iterable[TaskUpdate] = ()) -> AsyncTaskHandle:
    """A handle on a task that finished before this orchestrator started (or elsewhere): it replays the
    streamed output its home still holds (`chunks`: updates carrying a chunk, in order), then the final
    update."""
    state = TaskState(record.task_id, record.capability, record.params)
    state.attempts = list(record.attempts)
    if record.attempts:
        state.worker_id = record.attempts[-1].worker_id
        state.attempt = record.attempts[-1].number
    for update in chunks:
        if update.chunk is not None and not update.is_terminal:
            state.append(update)
    state.append(record.last_update or TaskUpdate(task_id=record.task_id, status=record.status))
    return AsyncTaskHandle(state, _Finished(record.task_id))


class Run(Protocol):
    """A task's run on this engine: a `Run` (a worker runs the task), or a `WorkflowRun`."""

    @property
    def spec(self) -> TaskSpec: ...

    @property
    def handle(self) -> AsyncTaskHandle: ...

    @property
    def phase(self) -> Phase: ...

    def record(self) -> TaskRecord: ...

    async def cancel(self, reason: str) -> bool: ...

    def hand_over(self, reason: str) -> None: ...

    def worker_left(self, worker_id: str, reason: str) -> None: ...


def _held_bytes(run: Run) -> int:
    """About the bytes a finished run holds: its arguments (as JSON text and decoded), its outputs and the
    chunks it streamed (kept for late readers: a streaming task's weigh the most)."""
    held = 2 * payload_bytes(run.spec.encoded_params)
    for update in run.handle.updates:
        held += len(update.output_json)
        if update.chunk is not None:
            held += update.chunk.size + CHUNK_OVERHEAD
    return held


class TaskIndex:
    """The runs of this engine: live ones by id, and the latest `keep_finished` finished ones (their records
    are made only when asked for; their handles let a late watcher replay every update of a recent task)."""

    def __init__(self, *, keep_finished: int = 10_000) -> None:
        self._keep = keep_finished
        self._recent_bytes = 0  # what the runs in _recent hold (_held_bytes), at most KEEP_FINISHED_BYTES
        self.live: dict[str, Run] = {}
        self._recent: OrderedDict[str, Run] = OrderedDict()
        self._ended_at: dict[str, float] = {}  # task id -> when it finished here (time.time())

    def add(self, run: Run) -> None:
        self.live[run.spec.task_id] = run

    def remove(self, run: Run) -> None:
        """Forget a run that stopped here without finishing (its hold was lost)."""
        if self.live.get(run.spec.task_id) is run:
            del self.live[run.spec.task_id]

    def finished(self, run: Run) -> None:
        task_id = run.spec.task_id
        self.live.pop(task_id, None)
        previous = self._recent.pop(task_id, None)
        if previous is not None:
            self._recent_bytes -= _held_bytes(previous)
        self._recent[task_id] = run
        self._ended_at[task_id] = time.time()
        self._recent_bytes += _held_bytes(run)
        while len(self._recent) > self._keep or (self._recent_bytes > KEEP_FINISHED_BYTES and len(self._recent) > 1):
            gone, oldest = self._recent.popitem(last=False)
            self._ended_at.pop(gone, None)
            self._recent_bytes -= _held_bytes(oldest)

    def forget(self, task_ids: Iterable[str]) -> None:
        """Forget finished runs (they expired)."""
        for task_id in task_ids:
            run = self._recent.pop(task_id, None)
            if run is not None:
                self._ended_at.pop(task_id, None)
                self._recent_bytes -= _held_bytes(run)

    def expired(self, kept_for: Callable[[str], float | None], now: float) -> list[str]:
        """The finished runs here whose capability's retention passed (oldest first)."""
        return [
            task_id
            for task_id, run in self._recent.items()
            if (kept := kept_for(run.spec.capability)) is not None and self._ended_at.get(task_id, now) < now - kept
        ]

    def get(self, task_id: str) -> Run | None:
        """A live or recently finished run."""
        return self.live.get(task_id) or self._recent.get(task_id)

    def matching(self, query: TaskQuery) -> dict[str, TaskRecord]:
        """The records of the runs here (live ones first, then the recently finished) matching `query`'s
        filters (not its page)."""
        prefix, capability = query.task_id_prefix, query.capability

        def matching(runs: Iterable[tuple[str, Run]]) -> Iterator[TaskRecord]:
            for task_id, run in runs:  # what the run tells cheaply first: records are made for the rest only
                if (prefix and not task_id.startswith(prefix)) or (capability and run.spec.capability != capability):
                    continue
                record = run.record()
                if query.matches(record):
                    yield record

        found = {record.task_id: record for record in matching(self.live.items())}
        for record in matching(reversed(self._recent.items())):
            found.setdefault(record.task_id, record)
        return found


def newest_first(record: TaskRecord) -> tuple[float, str]:
    return (-(record.submitted_at.timestamp() if record.submitted_at else 0.0), record.task_id)
