"""The orchestrator daemon's web dashboard (`wa orchestrator --http-port`): workers, queue, live tasks,
dead letters, throughput, workflow runs (each a graph of its steps) and schedules (their next occurrences and
runs), pushed to the page as server-sent events.

`DashboardServer` serves it for an `AsyncOrchestrator` in the same event loop; `OrchestratorServer` makes one
when given `http_port`.
"""

from worker_abstraction.dashboard.server import DashboardServer

__all__ = ["DashboardServer"]
