"""Retry decisions, and the updates the orchestrator writes itself when it ends or retries an attempt.

A failed attempt is tried again when its worker did not mark the failure final and either it is an
infrastructure failure (the worker died, left, forgot the task or gave it up: always retried) or the
policy retries task errors and this error's type is not on its list of non-retryable ones. Canceled and
rejected attempts are never retried. When attempts run out after a retryable failure, the task is
dead-lettered.
"""

from __future__ import annotations

import time

from worker_abstraction import lifecycle
from worker_abstraction.options import RetryPolicy
from worker_abstraction.orchestrator.core.state import TaskState
from worker_abstraction.types import FailureOrigin, TaskFailure, TaskStatus, TaskUpdate


def retryable(policy: RetryPolicy, failure: TaskFailure) -> bool:
    """Whether the policy would try this failure again (attempts permitting)."""
    if not failure.retryable:
        return False
    if failure.origin is FailureOrigin.INFRASTRUCTURE:
        return True
    if failure.origin in (FailureOrigin.CANCELED, FailureOrigin.REJECTED):
        return False
    return policy.retry_task_errors and failure.type not in policy.non_retryable_errors


def retrying(state: TaskState, failure: TaskFailure) -> TaskUpdate:
    """The PENDING update that says the current attempt failed and which attempt comes next."""
    number = state.attempt
    return TaskUpdate(
        task_id=state.task_id,
        status=TaskStatus.PENDING,
        error_message=f"attempt {number} failed, retrying as attempt {number + 1}: {failure.text}",
        worker_id=state.worker_id,
        attempt=number,
        timestamp_ns=time.time_ns(),
        metadata={"retry": "scheduled", "next_attempt": str(number + 1)},
        failure=failure,
    )


def failed(state: TaskState, failure: TaskFailure) -> TaskUpdate:
    """A FAILED update for an ending the orchestrator decided itself (a deadline, a refusal, ...)."""
    return _final(state, TaskStatus.FAILED, failure.text, failure)


def canceled(state: TaskState, reason: str) -> TaskUpdate:
    failure = TaskFailure(lifecycle.CANCELED, reason, FailureOrigin.CANCELED, retryable=False)
    return _final(state, TaskStatus.CANCELED, reason, failure)


def _final(state: TaskState, status: TaskStatus, message: str, failure: TaskFailure) -> TaskUpdate:
    return TaskUpdate(
        task_id=state.task_id,
        status=status,
        error_message=message,
        worker_id=state.worker_id,
        attempt=state.attempt,
        timestamp_ns=time.time_ns(),
        failure=failure,
    )
