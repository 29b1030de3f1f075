"""worker-abstraction: any agent joins a team of workers through one gRPC contract.

A worker subclasses `BaseWorker` and marks methods with `@capability`; a `RegistryServer` keeps track of
live workers; an `Orchestrator` (or `AsyncOrchestrator`) finds a capable worker, dispatches a task and
streams its updates back.
"""

from worker_abstraction import _transport  # noqa: F401  (first: chooses gRPC's polling before gRPC loads)
from worker_abstraction.capability import capability
from worker_abstraction.context import TaskContext
from worker_abstraction.errors import (
    BindError,
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
    TaskRejectedError,
    TaskTimeoutError,
    WorkerAbstractionError,
    WorkerNotFoundError,
)
from worker_abstraction.options import RetryPolicy, TaskOptions
from worker_abstraction.orchestrator import (
    AsyncOrchestrator,
    AsyncOrchestratorAPI,
    AsyncTaskHandle,
    Orchestrator,
    RemoteOrchestrator,
    TaskHandle,
)
from worker_abstraction.orchestrator.server import OrchestratorServer
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
    "AsyncOrchestrator",
    "AsyncOrchestratorAPI",
    "AsyncTaskHandle",
    "Attempt",
    "BaseWorker",
    "BindError",
    "CapabilitySpec",
    "DeadLetter",
    "FailureOrigin",
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
]
