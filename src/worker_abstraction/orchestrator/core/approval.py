"""Approval gates: a task that must be approved by an operator before it goes to any worker.

A task needs approval when it asked for it (`TaskOptions.require_approval`) or its capability does (the
engine's `approval_required`). It waits APPROVAL_REQUIRED, holding no queue place and no worker slot, until
an operator approves it (it goes on PENDING: delayed if it was, then queued) or denies it (it ends CANCELED,
failure type `Denied`, the reason in its record). Each decision, with who made it, is in the task's record.

A decision is not journaled on its own: a daemon that restarts before an approved task reached a worker
asks for approval again (it never runs unapproved); a denied task's end is stored as any end is.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from worker_abstraction.errors import TaskNotWaitingError
from worker_abstraction.exchanges import Approval
from worker_abstraction.orchestrator.core.phase import Phase
from worker_abstraction.types import FailureOrigin, TaskFailure, TaskStatus, TaskUpdate

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.run import TaskRun

DENIED = "Denied"


def required(run: TaskRun) -> bool:
    return run.spec.options.require_approval or run.capability in run._crew.approval_required


def wait(run: TaskRun) -> None:
    """The task waits for a decision."""
    run.phase = Phase.APPROVAL
    run.state.append(TaskUpdate(run.spec.task_id, TaskStatus.APPROVAL_REQUIRED, timestamp_ns=time.time_ns()))


def _waiting(run: TaskRun) -> None:
    if run.phase is not Phase.APPROVAL:
        raise TaskNotWaitingError(run.spec.task_id, f"waits for no approval (it is {run.state.status.name})")


def approve(run: TaskRun, decided_by: str, reason: str) -> None:
    """Let the task go on (PENDING).

    Raises:
        TaskNotWaitingError: it waits for no approval.
    """
    _waiting(run)
    approval = Approval(True, decided_by, reason, time.time_ns())
    run.state.append(TaskUpdate(run.spec.task_id, TaskStatus.PENDING, timestamp_ns=time.time_ns(), approval=approval))
    run.phase = Phase.WAITING
    run._begin()


def deny(run: TaskRun, decided_by: str, reason: str) -> None:
    """End the task CANCELED, the reason in its record.

    Raises:
        TaskNotWaitingError: it waits for no approval.
    """
    _waiting(run)
    reason = reason or "denied by an operator"
    approval = Approval(False, decided_by, reason, time.time_ns())
    failure = TaskFailure(DENIED, reason, FailureOrigin.CANCELED, retryable=False)
    now = time.time_ns()
    run.cancel_reason = reason
    run._finish(
        TaskUpdate(
            run.spec.task_id,
            TaskStatus.CANCELED,
            error_message=reason,
            timestamp_ns=now,
            failure=failure,
            approval=approval,
        )
    )


def decision_of(run: TaskRun) -> Approval | None:
    """The decision made on the task (None: none needed, or none yet)."""
    for update in run.state.updates:
        if update.approval is not None:
            return update.approval
    return None
