"""Every task an orchestrator knows: the live ones, the recently finished ones, and (with a store) all others.

Live tasks are read from their runs; finished ones from a bounded memory of recent runs and, with a
durable journal, from the store, which keeps them all. Idempotency keys are remembered here too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator

from worker_abstraction.codec import payload_bytes
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.run import TaskRun
from worker_abstraction.orchestrator.core.state import TaskState
from worker_abstraction.orchestrator.homes.journal import Journal
from worker_abstraction.types import TaskQuery, TaskRecord, TaskSpec, TaskUpdate

_KEEP_KEYS = 100_000
# Finished runs kept in memory stop at this many bytes of arguments and outputs too (an estimate), not only at
# `keep_finished`: 10,000 tasks of a megabyte each would otherwise hold tens of gigabytes. A store keeps them all.
KEEP_FINISHED_BYTES = 64 * 2**20


class _Finished:
    """The owner of a handle on a task that ended before this orchestrator started: nothing to cancel."""

    async def cancel(self, reason: str) -> bool:
        return False


def finished_handle(record: TaskRecord) -> AsyncTaskHandle:
    """A handle on a task that finished before this orchestrator started: it replays the final update."""
    state = TaskState(record.task_id, record.capability, record.params)
    state.attempts = list(record.attempts)
    if record.attempts:
        state.worker_id = record.attempts[-1].worker_id
        state.attempt = record.attempts[-1].number
    state.append(record.last_update or TaskUpdate(task_id=record.task_id, status=record.status))
    return AsyncTaskHandle(state, _Finished())


def _held_bytes(run: TaskRun) -> int:
    """About the bytes a finished run holds: its arguments (as JSON text and decoded) and its outputs."""
    return 2 * payload_bytes(run.spec.encoded_params) + sum(len(update.output_json) for update in run.handle.updates)


class TaskIndex:
    """Live runs by id, the latest `keep_finished` finished ones, and idempotency keys."""

    def __init__(self, journal: Journal, *, keep_finished: int = 10_000) -> None:
        self._journal = journal
        self._keep = keep_finished
        self._recent_bytes = 0  # what the runs in _recent hold (_held_bytes), at most KEEP_FINISHED_BYTES
        self.live: dict[str, TaskRun] = {}
        # Finished runs, whose records are made only when asked for (the hot path keeps a reference);
        # their handles also let a late watcher replay every update of a recent task.
        self._recent: OrderedDict[str, TaskRun] = OrderedDict()
        self._keys: OrderedDict[str, AsyncTaskHandle] = OrderedDict()

    def add(self, run: TaskRun) -> None:
        self.live[run.spec.task_id] = run
        key = run.spec.options.idempotency_key
        if key:  # taken now, so a concurrent resubmission finds this task
            self.remember_key(key, run.handle)

    def remove(self, run: TaskRun) -> None:
        """Forget a run that was never accepted (its submission failed)."""
        self.live.pop(run.spec.task_id, None)
        key = run.spec.options.idempotency_key
        if key and self._keys.get(key) is run.handle:
            del self._keys[key]

    def finished(self, run: TaskRun) -> None:
        task_id = run.spec.task_id
        self.live.pop(task_id, None)
        previous = self._recent.pop(task_id, None)
        if previous is not None:
            self._recent_bytes -= _held_bytes(previous)
        self._recent[task_id] = run
        self._recent_bytes += _held_bytes(run)
        while len(self._recent) > self._keep or (self._recent_bytes > KEEP_FINISHED_BYTES and len(self._recent) > 1):
            _, oldest = self._recent.popitem(last=False)
            self._recent_bytes -= _held_bytes(oldest)
            key = oldest.spec.options.idempotency_key
            if key and self._keys.get(key) is oldest.handle:  # (its handle holds what it held: the store has it)
                del self._keys[key]
        self._journal.finished(run)

    def get(self, task_id: str) -> TaskRun | None:
        """A live or recently finished run."""
        return self.live.get(task_id) or self._recent.get(task_id)

    async def taken(self, task_id: str) -> bool:
        """Whether a task with this id was ever accepted here (ids are never reused)."""
        return self.get(task_id) is not None or await self._journal.finished_record(task_id) is not None

    def remember_key(self, key: str, handle: AsyncTaskHandle) -> None:
        self._keys[key] = handle
        while len(self._keys) > _KEEP_KEYS:
            self._keys.popitem(last=False)

    async def by_key(self, key: str) -> AsyncTaskHandle | None:
        """The task submitted with this idempotency key (running or finished), if known."""
        handle = self._keys.get(key)
        if handle is None:
            record = await self._journal.finished_by_key(key)
            handle = self._keys.get(key)  # submitted while the store was asked
            if handle is None and record is not None:
                handle = finished_handle(record)
                self.remember_key(key, handle)
        if handle is not None:
            self._keys.move_to_end(key)
        return handle

    async def record(self, task_id: str) -> TaskRecord | None:
        run = self.get(task_id)
        return run.record() if run is not None else await self._journal.finished_record(task_id)

    async def submission(self, task_id: str) -> TaskSpec | None:
        """A task as it was submitted (options included), running or finished; None: not known here."""
        run = self.get(task_id)
        return run.spec if run is not None else await self._journal.submission(task_id)

    async def page(self, query: TaskQuery) -> tuple[list[TaskRecord], bool]:
        """Records matching `query`, most recently submitted first; True when more follow this page.

        Live and recently finished runs are read here; the rest from the journal, which holds every finished
        task (through its own index: the filters reach the store, so a page is found among all of them).
        """
        limit, offset, prefix, capability = query.limit, query.offset, query.task_id_prefix, query.capability

        def matching(runs: Iterable[tuple[str, TaskRun]]) -> Iterator[TaskRecord]:
            for task_id, run in runs:  # what the run tells cheaply first: records are made for the rest only
                if (prefix and not task_id.startswith(prefix)) or (capability and run.spec.capability != capability):
                    continue
                record = run.record()
                if query.matches(record):
                    yield record

        found = {record.task_id: record for record in matching(self.live.items())}
        for record in matching(reversed(self._recent.items())):
            found.setdefault(record.task_id, record)
        # The first offset + limit + 1 of the store's matches hold this page's, whatever memory holds. The
        # store decides what matches among its records (with its own columns: see its `finished_records`).
        for record in await self._journal.finished_records(query, limit=offset + limit + 1, offset=0):
            found.setdefault(record.task_id, record)
        ordered = sorted(found.values(), key=_newest_first)
        return ordered[offset : offset + limit], len(ordered) > offset + limit


def _newest_first(record: TaskRecord) -> tuple[float, str]:
    return (-(record.submitted_at.timestamp() if record.submitted_at else 0.0), record.task_id)
