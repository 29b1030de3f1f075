"""The orchestrator: find workers, dispatch tasks, follow them to their end."""

from typing import TYPE_CHECKING

from worker_abstraction import _lazy

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.api import AsyncOrchestratorAPI
    from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
    from worker_abstraction.orchestrator.embedded import AsyncOrchestrator
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator
    from worker_abstraction.orchestrator.sync import Orchestrator, TaskHandle

__all__ = [
    "AsyncOrchestrator",
    "AsyncOrchestratorAPI",
    "AsyncTaskHandle",
    "Orchestrator",
    "RemoteOrchestrator",
    "TaskHandle",
]

# Imported on first use (see `_lazy`): a client of a daemon (RemoteOrchestrator) does not load the
# embedded engine.
if not TYPE_CHECKING:
    __getattr__, __dir__ = _lazy.exports(
        __name__,
        {
            "worker_abstraction.orchestrator.api": ("AsyncOrchestratorAPI",),
            "worker_abstraction.orchestrator.embedded": ("AsyncOrchestrator",),
            "worker_abstraction.orchestrator.core.handle": ("AsyncTaskHandle",),
            "worker_abstraction.orchestrator.remote.client": ("RemoteOrchestrator",),
            "worker_abstraction.orchestrator.sync": ("Orchestrator", "TaskHandle"),
        },
    )
