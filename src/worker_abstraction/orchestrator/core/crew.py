"""What every task run works with (its crew), and the phases a run goes through."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from worker_abstraction.observability.metrics import OrchestratorMetrics
from worker_abstraction.options import RetryPolicy
from worker_abstraction.orchestrator.core.clock import Clock
from worker_abstraction.orchestrator.core.health import WorkerStanding
from worker_abstraction.orchestrator.core.scheduler import Scheduler
from worker_abstraction.orchestrator.edge.link import WorkerLinks

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.records import Run


class FinishedTasks(Protocol):
    def finished(self, run: Run) -> None:
        """The run ended: keep its record."""
        ...


@dataclass(slots=True)
class Crew:
    """What every run works with."""

    scheduler: Scheduler
    links: WorkerLinks
    standing: WorkerStanding
    finished: FinishedTasks
    clock: Clock
    retry_policy: RetryPolicy
    metrics: OrchestratorMetrics | None = None  # None: nothing is counted
    approval_required: frozenset[str] = frozenset()  # capabilities whose tasks wait for an operator's approval
    background: set[asyncio.Task[Any]] = field(default_factory=set)  # dispatches and cancels in flight
