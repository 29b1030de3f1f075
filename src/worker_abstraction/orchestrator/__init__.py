"""The orchestrator: find workers, dispatch tasks, follow them to their end."""

from worker_abstraction.orchestrator.api import AsyncOrchestratorAPI
from worker_abstraction.orchestrator.client import AsyncOrchestrator
from worker_abstraction.orchestrator.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.remote import RemoteOrchestrator
from worker_abstraction.orchestrator.sync import Orchestrator, TaskHandle

__all__ = [
    "AsyncOrchestrator",
    "AsyncOrchestratorAPI",
    "AsyncTaskHandle",
    "Orchestrator",
    "RemoteOrchestrator",
    "TaskHandle",
]
