"""worker-abstraction: any agent joins a team of workers through one gRPC contract.

A worker subclasses `BaseWorker` and marks methods with `@capability`; a `RegistryServer` keeps track of
live workers; an `Orchestrator` (or `AsyncOrchestrator`) finds a capable worker, dispatches a task and
streams its updates back.
"""

from worker_abstraction.capability import capability
from worker_abstraction.context import TaskContext
from worker_abstraction.errors import (
    BindError,
    InvalidCapabilityError,
    InvalidParametersError,
    InvalidWorkerInfoError,
    NoWorkerError,
    OrchestratorUnavailableError,
    QueueFullError,
    RegistryUnavailableError,
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
from worker_abstraction.orchestrator import AsyncOrchestrator, AsyncTaskHandle, Orchestrator, TaskHandle
from worker_abstraction.orchestrator.remote import RemoteOrchestrator
from worker_abstraction.orchestrator.retry import RetryPolicy
from worker_abstraction.orchestrator.service import OrchestratorServer
from worker_abstraction.registry import RegistryClient, RegistryServer
from worker_abstraction.types import (
    Attempt,
    CapabilitySpec,
    DeadLetter,
    LoadReport,
    ParameterSpec,
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
    "AsyncTaskHandle",
    "Attempt",
    "BaseWorker",
    "BindError",
    "CapabilitySpec",
    "DeadLetter",
    "InvalidCapabilityError",
    "InvalidParametersError",
    "InvalidWorkerInfoError",
    "LoadReport",
    "NoWorkerError",
    "Orchestrator",
    "OrchestratorServer",
    "OrchestratorUnavailableError",
    "ParameterSpec",
    "QueueFullError",
    "RegistryClient",
    "RegistryServer",
    "RegistryUnavailableError",
    "RemoteOrchestrator",
    "RetryPolicy",
    "TaskCanceledError",
    "TaskContext",
    "TaskError",
    "TaskExistsError",
    "TaskFailedError",
    "TaskHandle",
    "TaskNotFoundError",
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
