"""Worker names for the dashboard: every worker shown is shown as its name with its id, whenever it is shown.

A task's row names its worker as the row is made, from the orchestrator's view of the live workers, so
the page never depends on which of the overview or the row reached it first. Workers that have left are
remembered (the latest `limit` seen), so a finished task's page still names the worker that ran it.
"""

from __future__ import annotations

from collections import OrderedDict

from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.types import WorkerInfo


class WorkerNames:
    """Worker id -> name, for the live workers and those seen since the dashboard started.

    Args:
        directory: the orchestrator's live view of workers (read first), or None.
        limit: names of workers no longer live that are remembered.
    """

    def __init__(self, directory: WorkerDirectory | None = None, *, limit: int = 10_000) -> None:
        self._directory = directory
        self._limit = limit
        self._seen: OrderedDict[str, str] = OrderedDict()

    def seen(self, worker: WorkerInfo) -> None:
        """A worker joined or changed (hung on the directory's `on_seen`)."""
        if worker.name:
            self._seen[worker.worker_id] = worker.name
            self._seen.move_to_end(worker.worker_id)
            while len(self._seen) > self._limit:
                self._seen.popitem(last=False)

    def name(self, worker_id: str) -> str:
        """The worker's name ("" when it has none, or was never seen here)."""
        if not worker_id:
            return ""
        live = self._directory.workers.get(worker_id) if self._directory is not None else None
        if live is not None and live.name:
            return live.name
        return self._seen.get(worker_id, "")
