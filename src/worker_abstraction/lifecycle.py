"""A task's lifecycle: the tables of legal moves, on the orchestrator and on the worker, in one place.

On the orchestrator, a task as a whole (`TASK_TRANSITIONS`):

    PENDING ──► RUNNING ──► COMPLETED
       │  ▲        │  ▲  ──► FAILED
       │  └────────┘  │  ──► CANCELED
       │   (a retry)  └─ (progress: RUNNING again)
       └──► COMPLETED / FAILED / CANCELED (a fast task, or canceled while waiting)

A handler may ask for input (`ctx.request_input`): RUNNING ──► INPUT_REQUIRED ──answered──► RUNNING. A task
that needs an operator's approval waits APPROVAL_REQUIRED before anything else: approved, it goes on PENDING;
denied, it ends CANCELED.

A terminal state is final: nothing leaves COMPLETED, FAILED or CANCELED. A failed attempt that is retried
does not reach FAILED for the task: the orchestrator turns it into PENDING (waiting for the next attempt).
Updates that would break the table (a zombie's late RUNNING after the outcome, say) are ignored and counted.

On a worker, one attempt of a task (`ATTEMPT_TRANSITIONS`): PENDING, then RUNNING (progress repeats it),
INPUT_REQUIRED and back while it waits for answers, then one terminal state; a move outside the table is a
bug in the worker.

The failure types the framework itself reports (`TaskFailure.type`) are named here too.
"""

from __future__ import annotations

from worker_abstraction.types import TaskStatus

_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELED})

_ASKING = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.INPUT_REQUIRED})

TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.UNKNOWN: frozenset(TaskStatus),
    TaskStatus.PENDING: _ASKING | {TaskStatus.APPROVAL_REQUIRED} | _TERMINAL,
    TaskStatus.RUNNING: _ASKING | _TERMINAL,
    TaskStatus.INPUT_REQUIRED: _ASKING | _TERMINAL,
    TaskStatus.APPROVAL_REQUIRED: frozenset({TaskStatus.PENDING}) | _TERMINAL,
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELED: frozenset(),
}

ATTEMPT_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.CANCELED}),
    TaskStatus.RUNNING: frozenset({TaskStatus.RUNNING, TaskStatus.INPUT_REQUIRED}) | _TERMINAL,
    TaskStatus.INPUT_REQUIRED: frozenset({TaskStatus.RUNNING}) | _TERMINAL,
}

# TaskFailure.type of the failures the framework decides (a handler's own errors carry their class name).
DEADLINE_EXCEEDED = "DeadlineExceeded"  # the execution timeout passed
QUEUE_TIMEOUT = "QueueTimeout"  # no worker took the task within its queue timeout
WORKER_LOST = "WorkerLost"  # the worker died, left, became unreachable or forgot the task
DISPATCH_FAILED = "DispatchFailed"  # the task could not be handed to the worker
REJECTED = "Rejected"  # the worker refused the task as invalid
CANCELED = "Canceled"  # someone canceled the task
WORKER_STOPPED = "WorkerStopped"  # the worker stopped before the task finished; nobody asked, so retry elsewhere
OUTPUT_NOT_SERIALIZABLE = "TypeError"  # the handler returned something JSON cannot carry
INPUT_TIMEOUT = "InputTimeout"  # nobody answered a handler's question in time (a failure, not an overrun)


def allowed(current: TaskStatus, following: TaskStatus) -> bool:
    """Whether a task may move from `current` to `following` (orchestrator side)."""
    return following in TASK_TRANSITIONS[current]


def attempt_allowed(current: TaskStatus, following: TaskStatus) -> bool:
    """Whether one attempt on a worker may move from `current` to `following`."""
    return following in ATTEMPT_TRANSITIONS.get(current, frozenset())
