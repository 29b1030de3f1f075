"""Prometheus metrics of the orchestrator, the registry and each worker.

Each process object takes one metrics object as `metrics=` (`OrchestratorMetrics` for `AsyncOrchestrator`
and `OrchestratorServer`, `RegistryMetrics` for `RegistryServer`, `WorkerMetrics` for a `BaseWorker`);
without one it records nothing. A metrics object keeps its metrics in a `CollectorRegistry` of its own (or
one it is given), so tests and programs that embed several servers keep them apart, and `serve()` exposes
that registry with prometheus_client's own HTTP server.

Counters and histograms are updated where things happen, at most a few times per task. Gauges that
describe a state (the queue, tasks in flight, circuits, workers by state) cost nothing between scrapes:
they are read when scraped, on the event loop that owns the state (see `exposition.LoopReader`), so they
never go stale and never list a worker that left.

    orchestrator
      wa_tasks_total{capability,status}          tasks ended: COMPLETED, FAILED or CANCELED
      wa_task_queue_wait_seconds{capability}     acceptance to first dispatch (or to its end, if it never ran)
      wa_task_run_seconds{capability}            its last attempt, dispatch to end
      wa_retries_total{capability}               attempts that failed and were scheduled again
      wa_queue_depth{capability,priority}        tasks waiting for a worker
      wa_tasks_in_flight{worker_id}              tasks holding a slot on each live worker
      wa_circuit_state{worker_id,state}          1 for each live worker's breaker state, 0 for the others
      wa_dead_letters                            tasks in the dead-letter queue
      wa_store_write_seconds                     one group commit of the SQLite task store
    orchestrator and registry on NATS
      wa_store_available                         1 while the shared store answers, 0 during an outage
      wa_store_errors_total                      calls to the shared store that found it not answering
    registry
      wa_workers{state}                          live workers, ACTIVE or SUSPECT
      wa_heartbeats_total, wa_worker_registrations_total, wa_worker_evictions_total
    worker
      wa_worker_tasks_total{capability,status}   tasks this worker ended
      wa_worker_task_seconds{capability}         acceptance to end, on this worker
      wa_worker_tasks_running                    tasks accepted and not ended

Labels stay few: never a task id. Capabilities are the label most open to growth (an orchestrator that
queues tasks for capabilities no worker offers accepts any name), so past `max_capabilities` distinct
names the rest share the value `_other`; priorities in `wa_queue_depth` are bounded the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from worker_abstraction.observability.collectors import StateCollector, StoreCollector, gauge_families
from worker_abstraction.types import Attempt, TaskStatus

if TYPE_CHECKING:
    # prometheus_client (and the HTTP server) load when a metrics object is made: a process that counts
    # nothing, as most workers and every `wa` client command, never imports them.
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.metrics_core import Metric

    from worker_abstraction.auth import Authenticator
    from worker_abstraction.observability.exposition import LoopReader, MetricsEndpoint
    from worker_abstraction.stores.availability import StoreAvailability
    from worker_abstraction.tls import TLSConfig

OTHER = "_other"  # the label value shared past a label's bound
MAX_CAPABILITIES = 256
MAX_PRIORITIES = 16  # per capability in wa_queue_depth; lower ones are summed under priority "_other"

# Tasks range from a no-op (well under a millisecond) to hours.
TASK_SECONDS_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    900.0, 3600.0,
)  # fmt: skip
STORE_SECONDS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

_M = TypeVar("_M", "Counter", "Histogram")


class Metrics:
    """What the three metrics objects share: their registry, bounded capability labels, and `serve`."""

    def __init__(self, registry: CollectorRegistry | None, max_capabilities: int) -> None:
        from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

        if registry is None:
            # A registry of its own also describes its process, as prometheus_client's default one does.
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        self.registry = registry
        self._max_capabilities = max_capabilities
        self._capabilities: set[str] = set()
        self._capabilities_lock = threading.Lock()  # labels are also made on the scraping thread
        self._store: StoreCollector | None = None

    def watch_store(self, availability: StoreAvailability) -> None:
        """Report whether a shared store answers (`wa_store_available`) and how often it did not
        (`wa_store_errors_total`), read from `availability` at each scrape."""
        if self._store is None:
            self._store = StoreCollector()
            self.registry.register(self._store)
        self._store.availability = availability

    def serve(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        tls: TLSConfig | None = None,
        auth: Authenticator | None = None,
    ) -> MetricsEndpoint:
        """Serve these metrics over HTTP, or HTTPS with `tls`, until `close()` (see `exposition.serve`).

        Args:
            port: port to listen on; 0 picks a free one (the endpoint's `port`).
            host: interface to listen on.
            tls: serve HTTPS with its cert and key (mTLS under `require_client_cert`).
            auth: let only operators' scrapes through (401/403 for the others).

        Raises:
            BindError: the address cannot be listened on.
            InvalidTLSConfigError: the cert and key cannot be served.
        """
        from worker_abstraction.observability import exposition

        return exposition.serve(self.registry, port, host=host, tls=tls, auth=auth)

    def capability_label(self, capability: str) -> str:
        """The capability itself, or `_other` once `max_capabilities` other names have been seen."""
        if capability in self._capabilities:
            return capability
        with self._capabilities_lock:
            if len(self._capabilities) < self._max_capabilities:
                self._capabilities.add(capability)
                return capability
        return OTHER


class _Children(Generic[_M]):
    """A labelled metric's children, cached: `labels()` checks and locks on every call, a dict does not."""

    __slots__ = ("_cache", "_metric")

    def __init__(self, metric: _M) -> None:
        self._metric: _M = metric
        self._cache: dict[tuple[str, ...], _M] = {}

    def __call__(self, *labels: str) -> _M:
        child = self._cache.get(labels)
        if child is None:
            child = self._cache[labels] = self._metric.labels(*labels)
        return child


@dataclass(frozen=True, slots=True)
class OrchestratorSnapshot:
    """The orchestrator's state as one scrape reports it."""

    queue_depths: Mapping[str, Mapping[int, int]]  # capability -> priority -> tasks waiting
    in_flight: Mapping[str, int]  # live worker id -> tasks holding a slot there
    circuits: Mapping[str, str]  # live worker id -> its breaker's state
    circuit_states: Sequence[str]  # every state a breaker can be in
    dead_letters: int
    limited: Mapping[str, int] = field(default_factory=dict)  # capability -> tasks waiting on its limits
    schedules: Mapping[str, int] = field(default_factory=dict)  # "active" / "paused" -> schedules
    delayed: int = 0  # tasks accepted whose not_before has not come


class OrchestratorMetrics(Metrics):
    """An orchestrator's metrics (see the module docstring); give it to one orchestrator.

    Args:
        registry: where the metrics are registered (default: a registry of their own, with the process's).
        max_capabilities: distinct capability label values before the rest share `_other`.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, max_capabilities: int = MAX_CAPABILITIES) -> None:
        from prometheus_client import Counter, Histogram

        from worker_abstraction.observability.exposition import LoopReader

        super().__init__(registry, max_capabilities)
        registry = self.registry
        self.tasks = Counter("wa_tasks", "Tasks ended, by final status.", ["capability", "status"], registry=registry)
        self.queue_wait_seconds = Histogram(
            "wa_task_queue_wait_seconds",
            "Seconds from a task's acceptance to its first dispatch (to its end, if it never reached a worker).",
            ["capability"],
            buckets=TASK_SECONDS_BUCKETS,
            registry=registry,
        )
        self.run_seconds = Histogram(
            "wa_task_run_seconds",
            "Seconds a task's last attempt ran, from its dispatch to the task's end.",
            ["capability"],
            buckets=TASK_SECONDS_BUCKETS,
            registry=registry,
        )
        self._expired = Counter(
            "wa_tasks_expired", "Finished tasks a retention sweep dropped (on NATS, TTLs drop them).", registry=registry
        )
        self.retries = Counter(
            "wa_retries", "Failed attempts scheduled to run again.", ["capability"], registry=registry
        )
        self.store_write_seconds = Histogram(
            "wa_store_write_seconds",
            "Seconds one group commit of the task store took.",
            buckets=STORE_SECONDS_BUCKETS,
            registry=registry,
        )
        self.inputs = Counter(
            "wa_input_requests", "Questions handlers asked (ctx.request_input).", ["capability"], registry=registry
        )
        self.input_wait_seconds = Histogram(
            "wa_input_wait_seconds",
            "Seconds from a handler's question to its answer.",
            ["capability"],
            buckets=TASK_SECONDS_BUCKETS,
            registry=registry,
        )
        self.chunks = Counter(
            "wa_output_chunks",
            "Pieces of streamed output handlers emitted (ctx.emit).",
            ["capability"],
            registry=registry,
        )
        self._inputs = _Children(self.inputs)
        self._input_wait = _Children(self.input_wait_seconds)
        self._chunks = _Children(self.chunks)
        self._tasks = _Children(self.tasks)
        self._queue_wait = _Children(self.queue_wait_seconds)
        self._run = _Children(self.run_seconds)
        self._retries = _Children(self.retries)
        self._state: LoopReader[OrchestratorSnapshot] = LoopReader("the orchestrator's queue and workers")
        registry.register(StateCollector(self._state_families, _ORCHESTRATOR_GAUGES))

    def watch(self, read: Callable[[], Coroutine[Any, Any, OrchestratorSnapshot]]) -> None:
        """Report the gauges from `read()`, run on the calling coroutine's loop at each scrape."""
        self._state.bind(read)

    def unwatch(self) -> None:
        """Stop reporting the gauges (the orchestrator is closing)."""
        self._state.unbind()

    def task_finished(
        self, capability: str, status: TaskStatus, submitted_at_ns: int, attempts: Sequence[Attempt]
    ) -> None:
        """A task ended with `status` after these attempts (none: it never reached a worker)."""
        label = self.capability_label(capability)
        self._tasks(label, status.name).inc()
        if attempts:
            first, last = attempts[0], attempts[-1]
            self._queue_wait(label).observe(max(0.0, first.started_at.timestamp() - submitted_at_ns / 1e9))
            ended = last.ended_at or datetime.now(UTC)
            self._run(label).observe(max(0.0, (ended - last.started_at).total_seconds()))
        else:
            self._queue_wait(label).observe(max(0.0, (time.time_ns() - submitted_at_ns) / 1e9))

    def run_finished(self, capability: str, status: TaskStatus, submitted_at_ns: int) -> None:
        """A task the engine ran itself (a workflow's) ended with `status`: counted as a task, and its whole
        length, from its submission, as its run."""
        label = self.capability_label(capability)
        self._tasks(label, status.name).inc()
        self._run(label).observe(max(0.0, (time.time_ns() - submitted_at_ns) / 1e9))

    def input_asked(self, capability: str) -> None:
        """A handler asked a question."""
        self._inputs(self.capability_label(capability)).inc()

    def input_answered(self, capability: str, seconds: float) -> None:
        """A question was answered `seconds` after it was asked."""
        self._input_wait(self.capability_label(capability)).observe(seconds)

    def chunk_streamed(self, capability: str) -> None:
        """A handler streamed one piece of output."""
        self._chunks(self.capability_label(capability)).inc()

    def tasks_expired(self, count: int) -> None:
        """A retention sweep dropped `count` finished tasks."""
        self._expired.inc(count)

    def task_retried(self, capability: str) -> None:
        """An attempt failed and the task will run again."""
        self._retries(self.capability_label(capability)).inc()

    def store_written(self, seconds: float) -> None:
        """The task store committed one group of writes in `seconds`."""
        self.store_write_seconds.observe(seconds)

    def _state_families(self) -> Sequence[Metric]:
        snapshot = self._state.read()
        if snapshot is None:
            return []
        families = gauge_families(_ORCHESTRATOR_GAUGES)
        depth, in_flight, circuit, dead, limited, schedules, delayed = families
        for capability, priorities in _bounded_depths(snapshot.queue_depths, self.capability_label):
            for priority, count in priorities:
                depth.add_metric([capability, priority], count)
        for worker_id, count in sorted(snapshot.in_flight.items()):
            in_flight.add_metric([worker_id], count)
        for worker_id, state in sorted(snapshot.circuits.items()):
            for each in snapshot.circuit_states:
                circuit.add_metric([worker_id, each], 1.0 if each == state else 0.0)
        dead.add_metric([], snapshot.dead_letters)
        for capability, count in sorted(snapshot.limited.items()):
            limited.add_metric([self.capability_label(capability)], count)
        for state, count in sorted(snapshot.schedules.items()):
            schedules.add_metric([state], count)
        delayed.add_metric([], snapshot.delayed)
        return families


class RegistryMetrics(Metrics):
    """A registry's metrics (see the module docstring).

    Args:
        registry: where the metrics are registered (default: a registry of their own, with the process's).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import Counter

        from worker_abstraction.observability.exposition import LoopReader

        super().__init__(registry, MAX_CAPABILITIES)
        registry = self.registry
        self.heartbeats = Counter("wa_heartbeats", "Heartbeats recorded from known workers.", registry=registry)
        self.registrations = Counter(
            "wa_worker_registrations", "Registrations accepted (first ones and renewals).", registry=registry
        )
        self.evictions = Counter(
            "wa_worker_evictions",
            "Workers the registry removed itself (silent past the TTL, or replaced at their address).",
            registry=registry,
        )
        self._workers: LoopReader[Mapping[str, int]] = LoopReader("the registry's workers")
        registry.register(StateCollector(self._worker_families, _REGISTRY_GAUGES))

    def watch(self, read: Callable[[], Coroutine[Any, Any, Mapping[str, int]]]) -> None:
        """Report `wa_workers` from `read()` (live workers by state name), run on the calling coroutine's loop."""
        self._workers.bind(read)

    def unwatch(self) -> None:
        """Stop reporting `wa_workers` (the registry is stopping)."""
        self._workers.unbind()

    def _worker_families(self) -> Sequence[Metric]:
        counts = self._workers.read()
        if counts is None:
            return []
        [workers] = gauge_families(_REGISTRY_GAUGES)
        for state in sorted({"ACTIVE", "SUSPECT", *counts}):
            workers.add_metric([state], counts.get(state, 0))
        return [workers]


class WorkerMetrics(Metrics):
    """A worker's metrics (see the module docstring); give each worker its own.

    Args:
        registry: where the metrics are registered (default: a registry of their own, with the process's).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        super().__init__(registry, MAX_CAPABILITIES)
        registry = self.registry
        self.tasks = Counter(
            "wa_worker_tasks", "Tasks this worker ended, by final status.", ["capability", "status"], registry=registry
        )
        self.task_seconds = Histogram(
            "wa_worker_task_seconds",
            "Seconds from a task's acceptance by this worker to its end.",
            ["capability"],
            buckets=TASK_SECONDS_BUCKETS,
            registry=registry,
        )
        self.running = Gauge("wa_worker_tasks_running", "Tasks accepted and not ended.", registry=registry)
        self._tasks = _Children(self.tasks)
        self._seconds = _Children(self.task_seconds)

    def watch_running(self, count: Callable[[], int]) -> None:
        """Report `count()` as the tasks running (read on the scraping thread: it must read one number)."""
        self.running.set_function(count)

    def task_finished(self, capability: str, status: TaskStatus, seconds: float) -> None:
        """A task ended on this worker with `status`, `seconds` after it was accepted."""
        label = self.capability_label(capability)
        self._tasks(label, status.name).inc()
        self._seconds(label).observe(seconds)


# ---- gauges read at scrape time ----------------------------------------------------------------------------

_ORCHESTRATOR_GAUGES = (
    ("wa_queue_depth", "Tasks waiting for a worker.", ("capability", "priority")),
    ("wa_tasks_in_flight", "Tasks holding a slot on each live worker.", ("worker_id",)),
    ("wa_circuit_state", "Each live worker's breaker: 1 for its state, 0 for the others.", ("worker_id", "state")),
    ("wa_dead_letters", "Tasks in the dead-letter queue.", ()),
    ("wa_tasks_limited", "Waiting tasks held back by their capability's rate or concurrency limit.", ("capability",)),
    ("wa_schedules", "Schedules, active or paused.", ("state",)),
    ("wa_tasks_delayed", "Tasks accepted that wait for their not_before.", ()),
)  # fmt: skip
_REGISTRY_GAUGES = (("wa_workers", "Live workers by state.", ("state",)),)


def _bounded_depths(
    depths: Mapping[str, Mapping[int, int]], label: Callable[[str], str]
) -> list[tuple[str, list[tuple[str, int]]]]:
    """Queue depths as label values: capabilities past the bound merged, the highest MAX_PRIORITIES kept."""
    merged: dict[str, dict[int, int]] = {}
    for capability, priorities in depths.items():
        into = merged.setdefault(label(capability), {})
        for priority, count in priorities.items():
            into[priority] = into.get(priority, 0) + count
    found = []
    for capability, priorities in sorted(merged.items()):
        ordered = sorted(priorities.items(), reverse=True)
        kept = [(str(priority), count) for priority, count in ordered[:MAX_PRIORITIES]]
        rest = sum(count for _, count in ordered[MAX_PRIORITIES:])
        found.append((capability, [*kept, (OTHER, rest)] if rest else kept))
    return found
