"""A worker's task records and table: the lifecycle they follow and the bookkeeping they keep."""

from __future__ import annotations

import pytest

from worker_abstraction import lifecycle
from worker_abstraction.types import TaskStatus
from worker_abstraction.worker.tasks import IllegalTransitionError, TaskRecord


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
