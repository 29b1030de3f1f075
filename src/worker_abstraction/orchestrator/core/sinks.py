"""Each attempt's sink (where what its worker says goes, tagged with the attempt's number), and a run's
list of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker_abstraction.types import TaskUpdate

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.run import TaskRun
    from worker_abstraction.orchestrator.edge.link import WorkerLinks


class _AttemptSink:
    """Where one attempt's updates go: to its run, tagged with the attempt's number."""

    __slots__ = ("_run", "attempt")

    def __init__(self, run: TaskRun, attempt: int) -> None:
        self._run, self.attempt = run, attempt

    @property
    def task_id(self) -> str:
        return self._run.spec.task_id

    def active(self) -> bool:
        return self._run.is_current(self.attempt)

    def resume_after(self) -> int:
        return self._run.state.last_sequence if self.active() else 0

    def deliver(self, update: TaskUpdate) -> None:
        self._run.on_update(self.attempt, update)

    def lost(self, reason: str) -> None:
        self._run.on_lost(self.attempt, reason)


class AttemptSinks:
    """Every attempt's sink and its worker's address: a superseded attempt stays heard (its late words are
    counted as stale) until the task ends, when `forget_all()` tells each link to drop it."""

    __slots__ = ("_links", "_run", "_sinks")

    def __init__(self, run: TaskRun, links: WorkerLinks) -> None:
        self._run, self._links = run, links
        self._sinks: list[tuple[_AttemptSink, str]] = []

    def open(self, attempt: int, address: str) -> _AttemptSink:
        sink = _AttemptSink(self._run, attempt)
        self._sinks.append((sink, address))
        return sink

    def forget_all(self) -> None:
        for sink, address in self._sinks:
            link = self._links.known(address)
            if link is not None:
                link.forget(sink)
        self._sinks.clear()
