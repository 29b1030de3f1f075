"""Why an attempt on this worker failed or was canceled: the `TaskFailure` each FAILED/CANCELED update carries.

Retryable says whether trying again (elsewhere, later) may help: a handler's error or an overrun may be
transient, an output JSON cannot carry or a cancel somebody asked for is not; a worker that stopped or broke
down under the task never had the task's fault, so its failures are infrastructure failures, retryable.
"""

from __future__ import annotations

from worker_abstraction import lifecycle
from worker_abstraction.errors import InputTimeoutError
from worker_abstraction.types import FailureOrigin, TaskFailure

WORKER_ERROR = "WorkerError"  # the worker itself failed to run the task (not its handler)


def handler_error(error: BaseException) -> TaskFailure:
    """The handler raised `error` (an unanswered question's `InputTimeoutError`: nobody answered in time, which
    asking again would not change)."""
    if isinstance(error, InputTimeoutError):
        return TaskFailure(lifecycle.INPUT_TIMEOUT, str(error), FailureOrigin.TIMEOUT, retryable=False)
    return TaskFailure(type(error).__name__, str(error), FailureOrigin.HANDLER, retryable=True)


def deadline_exceeded(timeout_seconds: float) -> TaskFailure:
    """The handler ran past the task's timeout."""
    message = (
        f"task ran longer than its timeout of {timeout_seconds:g}s (give it more with timeout_seconds=..., "
        "wa submit --timeout SECONDS, or task_timeout in wa.toml; 0 for no limit)"
    )
    return TaskFailure(lifecycle.DEADLINE_EXCEEDED, message, FailureOrigin.TIMEOUT, retryable=True)


def output_not_serializable(error: Exception) -> TaskFailure:
    """The handler returned a value JSON cannot carry: the same code returns it again, so no retry."""
    message = f"output is not JSON-serializable: {error}"
    return TaskFailure(lifecycle.OUTPUT_NOT_SERIALIZABLE, message, FailureOrigin.HANDLER, retryable=False)


def output_too_large(problem: str) -> TaskFailure:
    """The output would not fit in one message: the same code returns it again, so no retry."""
    return TaskFailure("OutputTooLarge", problem, FailureOrigin.HANDLER, retryable=False)


def canceled(reason: str) -> TaskFailure:
    """Someone asked to cancel the task."""
    return TaskFailure(lifecycle.CANCELED, reason, FailureOrigin.CANCELED, retryable=False)


def worker_stopped() -> TaskFailure:
    """The worker stopped before the task finished, without anyone asking to cancel it."""
    message = "worker stopped before the task finished"
    return TaskFailure(lifecycle.WORKER_STOPPED, message, FailureOrigin.INFRASTRUCTURE, retryable=True)


def worker_error(error: BaseException) -> TaskFailure:
    """The worker could not run the task (before or around its handler): `error` is the worker's own."""
    message = f"{type(error).__name__}: {error}"
    return TaskFailure(WORKER_ERROR, message, FailureOrigin.INFRASTRUCTURE, retryable=True)
