"""How `wa submit` and `wa task watch` print an update: a task sent back to PENDING says why."""

from __future__ import annotations

from worker_abstraction.cli.output import status_line
from worker_abstraction.types import TaskStatus, TaskUpdate


def test_a_retry_says_why_the_task_is_pending_again() -> None:
    update = TaskUpdate(
        task_id="t",
        status=TaskStatus.PENDING,
        error_message="attempt 1 failed, retrying as attempt 2: WorkerLost: the worker died",
    )
    assert status_line(update) == "PENDING (attempt 1 failed, retrying as attempt 2: WorkerLost: the worker died)"
    assert status_line(TaskUpdate(task_id="t", status=TaskStatus.PENDING)) == "PENDING"
    running = TaskUpdate(task_id="t", status=TaskStatus.RUNNING, progress=0.5, progress_message="half")
    assert status_line(running) == "RUNNING 50% half"
    canceled = TaskUpdate(task_id="t", status=TaskStatus.CANCELED, error_message="canceled: by alice")
    assert status_line(canceled) == "CANCELED (canceled: by alice)"
