"""worker-abstraction: any agent joins a team of workers through one gRPC contract.

A worker subclasses `BaseWorker` and marks methods with `@capability`; a `RegistryServer` keeps track of
live workers; an `Orchestrator` (or `AsyncOrchestrator`) finds a capable worker, dispatches a task and
streams its updates back.
"""

from typing import TYPE_CHECKING

from worker_abstraction import (
    _lazy,
    _transport,  # noqa: F401  (before anything loads gRPC: it chooses gRPC's polling)
)

# Eager because its module has its name: whichever submodule loaded `worker_abstraction.capability` first
# would otherwise leave the module where the decorator belongs. It is cheap (pydantic loads on first use).
from worker_abstraction.capability import capability, schema_capability

if TYPE_CHECKING:
    from worker_abstraction.context import TaskContext
    from worker_abstraction.errors import (
        BindError,
        ChunksDroppedError,
        InputTimeoutError,
        InvalidAnswerError,
        InvalidCapabilityError,
        InvalidParametersError,
        InvalidRequestError,
        InvalidTaskOptionsError,
        InvalidTLSConfigError,
        InvalidWorkerInfoError,
        NoWorkerError,
        OrchestratorUnavailableError,
        PermissionDeniedError,
        QueueFullError,
        RateLimitedError,
        RegistryUnavailableError,
        StoreInUseError,
        TaskCanceledError,
        TaskError,
        TaskExistsError,
        TaskFailedError,
        TaskNotFoundError,
        TaskNotWaitingError,
        TaskRejectedError,
        TaskTimeoutError,
        WorkerAbstractionError,
        WorkerNotFoundError,
    )
    from worker_abstraction.exchanges import Approval, InputAnswer, InputExchange, InputRequest, OutputChunk
    from worker_abstraction.options import RetryPolicy, TaskOptions
    from worker_abstraction.orchestrator import (
        AsyncOrchestrator,
        AsyncOrchestratorAPI,
        AsyncTaskHandle,
        Orchestrator,
        RemoteOrchestrator,
        TaskHandle,
    )
    from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
    from worker_abstraction.registry import RegistryClient, RegistryServer
    from worker_abstraction.tls import TLSConfig
    from worker_abstraction.types import (
        Attempt,
        CapabilitySpec,
        DeadLetter,
        FailureOrigin,
        LoadReport,
        ParameterSpec,
        TaskFailure,
        TaskRecord,
        TaskStatus,
        TaskUpdate,
        WorkerHealth,
        WorkerInfo,
        WorkerState,
    )
    from worker_abstraction.worker import BaseWorker

__version__ = "0.1.0"

__all__ = [
    "Approval",
    "AsyncOrchestrator",
    "AsyncOrchestratorAPI",
    "AsyncTaskHandle",
    "Attempt",
    "BaseWorker",
    "BindError",
    "CapabilitySpec",
    "ChunksDroppedError",
    "DeadLetter",
    "FailureOrigin",
    "InputAnswer",
    "InputExchange",
    "InputRequest",
    "InputTimeoutError",
    "InvalidAnswerError",
    "InvalidCapabilityError",
    "InvalidParametersError",
    "InvalidRequestError",
    "InvalidTLSConfigError",
    "InvalidTaskOptionsError",
    "InvalidWorkerInfoError",
    "LoadReport",
    "NoWorkerError",
    "Orchestrator",
    "OrchestratorServer",
    "OrchestratorUnavailableError",
    "OutputChunk",
    "ParameterSpec",
    "PermissionDeniedError",
    "QueueFullError",
    "RateLimitedError",
    "RegistryClient",
    "RegistryServer",
    "RegistryUnavailableError",
    "RemoteOrchestrator",
    "RetryPolicy",
    "StoreInUseError",
    "TLSConfig",
    "TaskCanceledError",
    "TaskContext",
    "TaskError",
    "TaskExistsError",
    "TaskFailedError",
    "TaskFailure",
    "TaskHandle",
    "TaskNotFoundError",
    "TaskNotWaitingError",
    "TaskOptions",
    "TaskRecord",
    "TaskRejectedError",
    "TaskStatus",
    "TaskTimeoutError",
    "TaskUpdate",
    "WorkerAbstractionError",
    "WorkerHealth",
    "WorkerInfo",
    "WorkerNotFoundError",
    "WorkerState",
    "capability",
    "schema_capability",
]

# Each public name is imported from its module on first use (see `_lazy`), so that importing the package
# loads gRPC (see `_transport`) and little else; a worker does not pay for the orchestrator, nor `wa --help`
# for either.
_MODULES: dict[str, tuple[str, ...]] = {
    "worker_abstraction.context": ("TaskContext",),
    "worker_abstraction.errors": tuple(name for name in __all__ if name.endswith("Error")),
    "worker_abstraction.exchanges": ("Approval", "InputAnswer", "InputExchange", "InputRequest", "OutputChunk"),
    "worker_abstraction.options": ("RetryPolicy", "TaskOptions"),
    "worker_abstraction.orchestrator": (
        "AsyncOrchestrator",
        "AsyncOrchestratorAPI",
        "AsyncTaskHandle",
        "Orchestrator",
        "RemoteOrchestrator",
        "TaskHandle",
    ),
    "worker_abstraction.orchestrator.daemon.server": ("OrchestratorServer",),
    "worker_abstraction.registry": ("RegistryClient", "RegistryServer"),
    "worker_abstraction.tls": ("TLSConfig",),
    "worker_abstraction.types": (
        "Attempt",
        "CapabilitySpec",
        "DeadLetter",
        "FailureOrigin",
        "LoadReport",
        "ParameterSpec",
        "TaskFailure",
        "TaskRecord",
        "TaskStatus",
        "TaskUpdate",
        "WorkerHealth",
        "WorkerInfo",
        "WorkerState",
    ),
    "worker_abstraction.worker": ("BaseWorker",),
}
if not TYPE_CHECKING:
    __getattr__, __dir__ = _lazy.exports(__name__, _MODULES)
