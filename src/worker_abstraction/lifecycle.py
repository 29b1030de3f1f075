"""A task's lifecycle as the orchestrator tracks it: the one table of legal moves.

    PENDING ──► RUNNING ──► COMPLETED
       │  ▲        │  ▲  ──► FAILED
       │  └────────┘  │  ──► CANCELED
       │   (a retry)  └─ (progress: RUNNING again)
       └──► COMPLETED / FAILED / CANCELED (a fast task, or canceled while waiting)

A terminal state is final: nothing leaves COMPLETED, FAILED or CANCELED. A failed attempt that is retried
does not reach FAILED for the task: the orchestrator turns it into PENDING (waiting for the next attempt).
Updates that would break the table (a zombie's late RUNNING after the outcome, say) are ignored and counted.
"""

from __future__ import annotations

from worker_abstraction.types import TaskStatus

_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELED})

TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.UNKNOWN: frozenset(TaskStatus),
    TaskStatus.PENDING: frozenset({TaskStatus.PENDING, TaskStatus.RUNNING}) | _TERMINAL,
    TaskStatus.RUNNING: frozenset({TaskStatus.PENDING, TaskStatus.RUNNING}) | _TERMINAL,
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELED: frozenset(),
}


def allowed(current: TaskStatus, following: TaskStatus) -> bool:
    """Whether a task may move from `current` to `following`."""
    return following in TRANSITIONS[current]
