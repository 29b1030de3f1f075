"""A worker's task records and table: the lifecycle they follow and the bookkeeping they keep."""

from __future__ import annotations

import pytest

from worker_abstraction import lifecycle
from worker_abstraction.types import TaskStatus
from worker_abstraction.worker import tasks
from worker_abstraction.worker.tasks import IllegalTransitionError, ResumeOutOfRangeError, TaskRecord, TaskTable


def test_a_record_follows_the_one_attempt_table_in_lifecycle(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker keeps no table of its own: narrowing lifecycle's table narrows what a record may do.
    monkeypatch.setitem(lifecycle.ATTEMPT_TRANSITIONS, TaskStatus.RUNNING, frozenset({TaskStatus.RUNNING}))
    record = TaskRecord("t", "echo", "w")
    record.running()
    with pytest.raises(IllegalTransitionError):
        record.completed("1")


def test_a_finished_record_refuses_every_further_move() -> None:
    record = TaskRecord("t", "echo", "w")
    record.running()
    record.completed("1")
    for move in (record.running, lambda: record.completed("2")):
        with pytest.raises(IllegalTransitionError):
            move()
    assert [TaskStatus(u.status) for u in record.log] == [TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.COMPLETED]


def test_a_record_replaced_before_its_finish_was_booked_stays_known_and_counted() -> None:
    table = TaskTable(keep_finished=1)
    old = TaskRecord("a", "echo", "w", attempt=1)
    table.add(old)
    new = TaskRecord("a", "echo", "w", attempt=2)
    table.add(new)  # the old one ended, but its runner has not been cleaned up yet
    table.finish(old)
    assert (table.get("a"), table.active, table.active_by_capability) == (new, 1, {"echo": 1})
    other = TaskRecord("b", "echo", "w")
    table.add(other)
    table.finish(other)  # evicts beyond the one finished task kept: never the running replacement
    assert table.get("a") is new and table.get("b") is other
    table.finish(new)
    assert (table.active, table.active_by_capability) == (0, {"echo": 0})


def test_a_record_replaced_after_it_finished_leaves_the_window_consistent() -> None:
    table = TaskTable(keep_finished=1)
    old = TaskRecord("a", "echo", "w", attempt=1)
    table.add(old)
    table.finish(old)
    new = TaskRecord("a", "echo", "w", attempt=2)
    table.add(new)
    other = TaskRecord("b", "echo", "w")
    table.add(other)
    table.finish(other)
    assert table.get("a") is new  # running again: not in the finished window
    table.finish(new)  # now the newest finished: "b" goes
    assert (table.get("a"), table.get("b"), table.active) == (new, None, 0)


# ---- a bounded log -------------------------------------------------------------------------------------------


def _streamed(count: int, size: int) -> TaskRecord:
    record = TaskRecord("t", "echo", "w")
    record.running()
    for _ in range(count):
        assert record.chunk("x" * size, "", False)
    return record


def test_a_record_that_streams_on_keeps_its_latest_output_within_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "KEEP_BYTES", 10_000)
    record = _streamed(1_000, 100)  # 100 KB streamed, and 1,002 updates in all
    assert record.held_bytes <= 10_000
    assert record.last_sequence == 1_002 and record.first > 1
    assert [u.sequence for u in record.log] == list(range(record.first, 1_003))  # no hole in what is kept
    assert record.log[-1].chunk.index == 1_000
    record.completed("null")
    assert TaskStatus(record.log[-1].status) is TaskStatus.COMPLETED and record.last_sequence == 1_003


def test_a_record_keeps_at_most_its_number_of_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "KEEP_UPDATES", 100)
    record = TaskRecord("t", "echo", "w")
    record.running()
    for step in range(1_000):
        record.progress(step / 1_000, "")
    assert len(record.log) <= 100 and record.last_sequence == 1_002


async def _read(record: TaskRecord, after: int, *, from_start: bool = False) -> list[int]:
    return [update.sequence async for update in record.follow(after, from_start=from_start)]


async def test_a_resume_within_what_is_kept_gets_every_later_update(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "KEEP_BYTES", 10_000)
    record = _streamed(1_000, 100)
    record.completed("null")
    first = record.first
    assert await _read(record, first - 1) == list(range(first, 1_004))
    assert await _read(record, 1_002) == [1_003]


async def test_a_resume_before_what_is_kept_is_refused_naming_where_to_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "KEEP_BYTES", 10_000)
    record = _streamed(1_000, 100)
    record.completed("null")
    for after, from_start in ((1, False), (0, True), (record.first - 2, False)):
        with pytest.raises(ResumeOutOfRangeError, match=f"resume after {record.first - 1} or later"):
            await _read(record, after, from_start=from_start)
    assert await _read(record, 0) == [1_003]  # (no resume point: the latest update, as ever)


async def test_a_reader_left_behind_by_the_stream_is_stopped_not_handed_a_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "KEEP_BYTES", 10_000)
    record = _streamed(10, 100)
    reader = record.follow(0, from_start=True)
    assert (await anext(reader)).sequence == 1
    for _ in range(1_000):  # the stream runs on while the reader holds update 1
        record.chunk("x" * 100, "", False)
    with pytest.raises(ResumeOutOfRangeError, match="was dropped before it was read"):
        await anext(reader)
