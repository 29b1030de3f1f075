"""Every error this package raises, under one root.

WorkerAbstractionError
├── InvalidCapabilityError      a @capability signature that cannot be described (raised at import)
├── InvalidWorkerInfoError      a registration the registry refuses (INVALID_ARGUMENT)
├── WorkerNotFoundError         an unknown worker id (NOT_FOUND)
├── RegistryUnavailableError    the registry cannot be reached
├── OrchestratorUnavailableError  the orchestrator daemon cannot be reached
├── BindError                   a server cannot listen on its address
├── NoWorkerError               no live worker offers the capability or meets the task's needs
├── QueueFullError              the orchestrator's queue is at its bound (RESOURCE_EXHAUSTED)
├── InvalidParametersError      task arguments that cannot be sent (INVALID_ARGUMENT)
└── TaskError                   something about one task
    ├── TaskNotFoundError       the worker does not know the task id (NOT_FOUND)
    ├── TaskRejectedError       the worker refused the task, with its reason
    ├── TaskFailedError         the task ended FAILED, with the worker's error message
    ├── TaskCanceledError       the task ended CANCELED
    └── TaskTimeoutError        no terminal state within the timeout
"""

from __future__ import annotations


class WorkerAbstractionError(Exception):
    """Root of everything this package raises."""


class InvalidCapabilityError(WorkerAbstractionError):
    """A capability's signature cannot be turned into a tool description."""


class InvalidWorkerInfoError(WorkerAbstractionError):
    """A worker description breaks the contract; `problems` lists every issue found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid worker registration: " + "; ".join(problems))
        self.problems = problems


class WorkerNotFoundError(WorkerAbstractionError):
    """No worker with this id is registered."""

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker {worker_id!r} is not registered")
        self.worker_id = worker_id


class RegistryUnavailableError(WorkerAbstractionError):
    """The registry could not be reached."""


class OrchestratorUnavailableError(WorkerAbstractionError):
    """The orchestrator daemon could not be reached."""


class BindError(WorkerAbstractionError):
    """A server could not listen on the requested address (in use, or not an address of this machine)."""


class NoWorkerError(WorkerAbstractionError):
    """No live worker offers the requested capability."""

    def __init__(self, capability: str, detail: str = "", *, headline: str = "") -> None:
        message = headline or f"no live worker offers capability {capability!r}"
        super().__init__(f"{message} ({detail})" if detail else message)
        self.capability = capability


class InvalidParametersError(WorkerAbstractionError):
    """Task arguments that cannot be sent; `problems` lists every issue found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid task parameters: " + "; ".join(problems))
        self.problems = problems


class QueueFullError(WorkerAbstractionError):
    """The orchestrator's queue is full; nothing was accepted. Retry later or raise the bound."""

    def __init__(self, capability: str, limit: int, scope: str) -> None:
        super().__init__(f"queue full: {limit} task(s) already waiting ({scope}); task for {capability!r} refused")
        self.capability, self.limit, self.scope = capability, limit, scope


class TaskError(WorkerAbstractionError):
    """Base of the errors about one task."""

    def __init__(self, task_id: str, message: str) -> None:
        super().__init__(message)
        self.task_id = task_id


class TaskNotFoundError(TaskError):
    """The worker does not know this task id."""

    def __init__(self, task_id: str, where: str = "the worker") -> None:
        super().__init__(task_id, f"task {task_id!r} is unknown to {where}")


class TaskExistsError(TaskError):
    """A task with this id is already in progress (give a new id, or use an idempotency key)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id, f"task {task_id!r} already exists and has not finished; submit with a new id")


class TaskRejectedError(TaskError):
    """The worker refused the task; `reason` is the worker's explanation."""

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(task_id, f"task {task_id} rejected: {reason}")
        self.reason = reason


class TaskFailedError(TaskError):
    """The task ended FAILED; `error_message` is what the worker reported."""

    def __init__(self, task_id: str, error_message: str) -> None:
        super().__init__(task_id, f"task {task_id} failed: {error_message}")
        self.error_message = error_message


class TaskCanceledError(TaskError):
    """The task ended CANCELED."""

    def __init__(self, task_id: str, reason: str = "") -> None:
        super().__init__(task_id, f"task {task_id} was canceled" + (f": {reason}" if reason else ""))
        self.reason = reason


class TaskTimeoutError(TaskError):
    """The task reached no terminal state within its timeout."""

    def __init__(self, task_id: str, timeout_seconds: float, *, in_queue: bool = False) -> None:
        if in_queue:
            message = f"task {task_id} waited {timeout_seconds:g}s in the queue and no worker took it"
        else:
            message = f"task {task_id} did not finish within {timeout_seconds:g}s"
        super().__init__(task_id, message)
        self.timeout_seconds, self.in_queue = timeout_seconds, in_queue
