"""The lifecycle table: terminal states are final, retries go back to PENDING."""

from __future__ import annotations

import itertools

from worker_abstraction.lifecycle import ATTEMPT_TRANSITIONS, TASK_TRANSITIONS, allowed, attempt_allowed
from worker_abstraction.types import TaskStatus


def test_terminal_states_are_final() -> None:
    for terminal in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELED):
        assert not any(allowed(terminal, s) for s in TaskStatus)


def test_the_ordinary_and_retry_paths_are_legal() -> None:
    path = [TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.RUNNING, TaskStatus.PENDING, TaskStatus.RUNNING]
    assert all(allowed(a, b) for a, b in itertools.pairwise(path))
    assert allowed(TaskStatus.RUNNING, TaskStatus.COMPLETED) and allowed(TaskStatus.PENDING, TaskStatus.CANCELED)


def test_every_status_has_a_row() -> None:
    assert set(TASK_TRANSITIONS) == set(TaskStatus)


def test_an_attempt_on_a_worker_is_a_strict_subset_of_the_task_lifecycle() -> None:
    # A worker never sends PENDING after PENDING, nor goes back from RUNNING: only the orchestrator retries.
    for current, following in ATTEMPT_TRANSITIONS.items():
        assert following <= TASK_TRANSITIONS[current]
    assert not attempt_allowed(TaskStatus.RUNNING, TaskStatus.PENDING)
    assert not attempt_allowed(TaskStatus.COMPLETED, TaskStatus.RUNNING)
    assert attempt_allowed(TaskStatus.PENDING, TaskStatus.CANCELED)
