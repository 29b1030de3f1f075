"""The lifecycle table: terminal states are final, retries go back to PENDING."""

from __future__ import annotations

import itertools

from worker_abstraction.lifecycle import TRANSITIONS, allowed
from worker_abstraction.types import TaskStatus


def test_terminal_states_are_final() -> None:
    for terminal in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELED):
        assert not any(allowed(terminal, s) for s in TaskStatus)


def test_the_ordinary_and_retry_paths_are_legal() -> None:
    path = [TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.RUNNING, TaskStatus.PENDING, TaskStatus.RUNNING]
    assert all(allowed(a, b) for a, b in itertools.pairwise(path))
    assert allowed(TaskStatus.RUNNING, TaskStatus.COMPLETED) and allowed(TaskStatus.PENDING, TaskStatus.CANCELED)


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(TaskStatus)
