"""Every error this package raises, under one root.

WorkerAbstractionError
├── InvalidCapabilityError      a @capability signature that cannot be described (raised at import)
├── InvalidWorkerInfoError      a registration the registry refuses (INVALID_ARGUMENT)
├── WorkerNotFoundError         an unknown worker id (NOT_FOUND)
├── RegistryUnavailableError    the registry cannot be reached (UNAVAILABLE)
│   └── RegistryRefusedError    it refused this process's credentials (also a PermissionDeniedError)
├── OrchestratorUnavailableError  the orchestrator daemon cannot be reached (UNAVAILABLE)
├── BindError                   a server cannot listen on its address
├── InvalidTLSConfigError       a TLSConfig that cannot be used (unreadable files, a cert without its key)
├── StoreInUseError             another daemon holds the task store
├── StoreUnavailableError       a server's store (its tasks, its workers) does not answer now (UNAVAILABLE)
├── NoWorkerError               no live worker offers the capability or meets the task's needs (FAILED_PRECONDITION)
├── QueueFullError              the orchestrator's queue is at its bound (RESOURCE_EXHAUSTED)
├── RateLimitedError            the caller is over its rate of calls (RESOURCE_EXHAUSTED)
├── InvalidParametersError      task arguments that cannot be sent (INVALID_ARGUMENT)
│   ├── InvalidTaskOptionsError task options out of range (INVALID_ARGUMENT)
│   └── InvalidAnswerError      an answer to a task's question that breaks its schema (INVALID_ARGUMENT)
├── InputTimeoutError           nobody answered a handler's question in time (raised in the handler)
└── TaskError                   something about one task
    ├── TaskNotFoundError       nobody knows the task id (NOT_FOUND)
    ├── TaskExistsError         the task id is taken (ALREADY_EXISTS)
    ├── TaskRejectedError       the worker refused the task, with its reason (FAILED_PRECONDITION)
    ├── ChunksDroppedError      a stream reader fell behind the chunks kept for it
    ├── TaskNotWaitingError     the task waits for no such answer or approval (FAILED_PRECONDITION)
    ├── TaskFailedError         the task ended FAILED, with the worker's error message
    ├── TaskCanceledError       the task ended CANCELED
    └── TaskTimeoutError        no terminal state within the timeout

Every error can say what it was made from (`fields()`), so an error raised by a daemon arrives in the
caller as the same class with the same fields (see `_rpc.py`, the one status table).
"""

from __future__ import annotations

from typing import Any


class WorkerAbstractionError(Exception):
    """Root of everything this package raises."""

    def fields(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this error (`type(error)(**error.fields())`)."""
        return {"message": str(self)}

    def __init__(self, message: str = "") -> None:
        super().__init__(message)


class InvalidCapabilityError(WorkerAbstractionError):
    """A capability's signature cannot be turned into a tool description."""


class InvalidWorkerInfoError(WorkerAbstractionError):
    """A worker description breaks the contract; `problems` lists every issue found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid worker registration: " + "; ".join(problems))
        self.problems = list(problems)

    def fields(self) -> dict[str, Any]:
        return {"problems": self.problems}


class WorkerNotFoundError(WorkerAbstractionError):
    """No worker with this id is registered."""

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker {worker_id!r} is not registered")
        self.worker_id = worker_id

    def fields(self) -> dict[str, Any]:
        return {"worker_id": self.worker_id}


class RegistryUnavailableError(WorkerAbstractionError):
    """The registry could not be reached."""


class OrchestratorUnavailableError(WorkerAbstractionError):
    """The orchestrator daemon could not be reached."""


class BindError(WorkerAbstractionError):
    """A server could not listen on the requested address (in use, or not an address of this machine)."""


class InvalidTLSConfigError(WorkerAbstractionError, ValueError):
    """A TLSConfig that cannot be used; `problems` lists every issue found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid TLS configuration: " + "; ".join(problems))
        self.problems = list(problems)

    def fields(self) -> dict[str, Any]:
        return {"problems": self.problems}


class StoreInUseError(WorkerAbstractionError):
    """Another orchestrator daemon holds this task store; one store has one daemon."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(f"task store {path} is in use by {holder}; stop that daemon or use another --store")
        self.path, self.holder = path, holder

    def fields(self) -> dict[str, Any]:
        return {"path": self.path, "holder": self.holder}


class StoreUnavailableError(WorkerAbstractionError):
    """A server's store (the daemon's shared tasks, the registry's workers) did not answer: unreachable, no
    leader yet, or no answer in time. The server answers UNAVAILABLE, and its callers hear it as the server
    being unavailable (`OrchestratorUnavailableError`, `RegistryUnavailableError`), which they retry."""


class NoWorkerError(WorkerAbstractionError):
    """No live worker offers the requested capability (or none meets the task's requirements)."""

    def __init__(self, capability: str, detail: str = "", *, headline: str = "") -> None:
        message = headline or f"no live worker offers capability {capability!r}"
        super().__init__(f"{message} ({detail})" if detail else message)
        self.capability, self.detail, self.headline = capability, detail, headline

    def fields(self) -> dict[str, Any]:
        return {"capability": self.capability, "detail": self.detail, "headline": self.headline}


class InvalidParametersError(WorkerAbstractionError):
    """Task arguments that cannot be sent; `problems` lists every issue found."""

    what = "task parameters"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"invalid {self.what}: " + "; ".join(problems))
        self.problems = list(problems)

    def fields(self) -> dict[str, Any]:
        return {"problems": self.problems}


class InvalidTaskOptionsError(InvalidParametersError):
    """Task options out of range or of the wrong type; `problems` lists every issue found."""

    what = "task options"


class InvalidAnswerError(InvalidParametersError):
    """An answer to a task's question that its schema refuses; `problems` lists every issue found. The task
    keeps waiting for a valid one."""

    what = "answer"


class InputTimeoutError(WorkerAbstractionError, TimeoutError):
    """Raised in a handler by `ctx.request_input` when nobody answered before the question's timeout."""

    def __init__(self, request_id: str, timeout_seconds: float) -> None:
        super().__init__(f"nobody answered input request {request_id[:100]!r} within {timeout_seconds:g}s")
        self.request_id, self.timeout_seconds = request_id, timeout_seconds

    def fields(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "timeout_seconds": self.timeout_seconds}


class PermissionDeniedError(WorkerAbstractionError):
    """The caller is known but may not do this (another principal's worker id, a capability it may not use)."""


class RegistryRefusedError(RegistryUnavailableError, PermissionDeniedError):
    """The registry refused this process's credentials (UNAUTHENTICATED or PERMISSION_DENIED). What retries
    a registry that cannot be reached retries this too (its token file may be fixed meanwhile); a command
    reports it as a refusal, not as a registry it cannot reach."""


class InvalidRequestError(InvalidParametersError):
    """A request that is not what the call takes (bytes that are not its message, a field out of range)."""

    what = "request"


class QueueFullError(WorkerAbstractionError):
    """The orchestrator's queue is full; nothing was accepted. Retry later or raise the bound."""

    def __init__(self, capability: str, limit: int, scope: str) -> None:
        super().__init__(f"queue full: {limit} task(s) already waiting ({scope}); task for {capability!r} refused")
        self.capability, self.limit, self.scope = capability, limit, scope

    def fields(self) -> dict[str, Any]:
        return {"capability": self.capability, "limit": self.limit, "scope": self.scope}


class RateLimitedError(WorkerAbstractionError):
    """The caller made more calls (or a session's submissions) than its rate allows; retry after a moment."""

    def __init__(self, principal: str, rate: float, retry_after_seconds: float) -> None:
        super().__init__(
            f"{principal} is over its rate of {rate:g} calls a second; retry in {retry_after_seconds:.2f} s"
        )
        self.principal, self.rate, self.retry_after_seconds = principal, rate, retry_after_seconds

    def fields(self) -> dict[str, Any]:
        return {"principal": self.principal, "rate": self.rate, "retry_after_seconds": self.retry_after_seconds}


class TaskError(WorkerAbstractionError):
    """Base of the errors about one task."""

    def __init__(self, task_id: str, message: str) -> None:
        super().__init__(message)
        self.task_id = task_id

    def fields(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "message": str(self)}


class TaskNotFoundError(TaskError):
    """Nobody here knows this task id."""

    def __init__(self, task_id: str, where: str = "the worker") -> None:
        super().__init__(task_id, f"task {task_id!r} is unknown to {where}")
        self.where = where

    def fields(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "where": self.where}


class TaskExistsError(TaskError):
    """A task with this id was already submitted (ids are never reused; use an idempotency key to resubmit)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id, f"task id {task_id!r} is already taken; submit with a new id")

    def fields(self) -> dict[str, Any]:
        return {"task_id": self.task_id}


class ScheduleNotFoundError(WorkerAbstractionError):
    """No schedule has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule is named {name[:100]!r}")
        self.name = name

    def fields(self) -> dict[str, Any]:
        return {"name": self.name}


class ScheduleExistsError(WorkerAbstractionError):
    """A schedule of this name exists already (update it, or remove it first)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a schedule named {name[:100]!r} exists already: update it, or remove it first")
        self.name = name

    def fields(self) -> dict[str, Any]:
        return {"name": self.name}


class TaskRejectedError(TaskError):
    """The worker refused the task; `reason` is the worker's explanation."""

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(task_id, f"task {task_id} rejected: {reason}")
        self.reason = reason

    def fields(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "reason": self.reason}


class TaskNotWaitingError(TaskError):
    """The task waits for no such thing: no input (or input to another request), or no approval."""

    def __init__(self, task_id: str, detail: str) -> None:
        super().__init__(task_id, f"task {task_id[:100]!r} {detail}")
        self.detail = detail

    def fields(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "detail": self.detail}


class ChunksDroppedError(TaskError):
    """A reader of a task's streamed output fell too far behind: chunks `after + 1` to `up_to` are no longer kept."""

    def __init__(self, task_id: str, after: int, up_to: int) -> None:
        super().__init__(
            task_id,
            f"task {task_id[:100]!r}: chunks {after + 1} to {up_to} of its output are no longer kept (a reader that "
            f"falls this far behind gets the chunks from {up_to + 1} on: stream(after={up_to}), or the result)",
        )
        self.after, self.up_to = after, up_to

    def fields(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "after": self.after, "up_to": self.up_to}


class TaskFailedError(TaskError):
    """The task ended FAILED; `error_message` is what the worker reported, `error_type` the error's type."""

    def __init__(self, task_id: str, error_message: str, *, error_type: str = "") -> None:
        super().__init__(task_id, f"task {task_id} failed: {error_message}")
        self.error_message, self.error_type = error_message, error_type

    def fields(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "error_message": self.error_message, "error_type": self.error_type}


class TaskCanceledError(TaskError):
    """The task ended CANCELED."""

    def __init__(self, task_id: str, reason: str = "") -> None:
        super().__init__(task_id, f"task {task_id} was canceled" + (f": {reason}" if reason else ""))
        self.reason = reason

    def fields(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "reason": self.reason}


class TaskTimeoutError(TaskError):
    """The task reached no terminal state within its timeout (or waited too long for a worker: `in_queue`)."""

    def __init__(self, task_id: str, timeout_seconds: float, *, in_queue: bool = False) -> None:
        if in_queue:
            message = f"task {task_id} waited {timeout_seconds:g}s in the queue and no worker took it"
        else:
            message = (
                f"task {task_id} did not finish within its timeout of {timeout_seconds:g}s (give it more with "
                "timeout_seconds=..., wa submit --timeout SECONDS, or task_timeout in wa.toml; 0 for no limit)"
            )
        super().__init__(task_id, message)
        self.timeout_seconds, self.in_queue = timeout_seconds, in_queue

    def fields(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "timeout_seconds": self.timeout_seconds, "in_queue": self.in_queue}


def error_class(name: str) -> type[WorkerAbstractionError] | None:
    """The error class of this package called `name` (None for any other name)."""
    found = globals().get(name)
    if isinstance(found, type) and issubclass(found, WorkerAbstractionError):
        return found
    return None
