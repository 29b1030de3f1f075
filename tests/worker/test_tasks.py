"""A worker's task records and table: the lifecycle they follow and the bookkeeping they keep."""

from __future__ import annotations

import pytest

from worker_abstraction import lifecycle
from worker_abstraction.types import TaskStatus
from worker_abstraction.worker.tasks import IllegalTransitionError, TaskRecord, TaskTable


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
