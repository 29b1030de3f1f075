"""Prometheus metrics scraped over HTTP from real servers: exact task counts, live gauges, bounded labels."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Gates, eventually
from worker_abstraction import (
    AsyncOrchestrator,
    OrchestratorServer,
    RegistryClient,
    RegistryServer,
    RetryPolicy,
    TaskCanceledError,
    TaskFailedError,
    TaskStatus,
    WorkerInfo,
)
from worker_abstraction.observability.exposition import MetricsEndpoint
from worker_abstraction.observability.metrics import (
    OTHER,
    Metrics,
    OrchestratorMetrics,
    RegistryMetrics,
    WorkerMetrics,
)
from worker_abstraction.orchestrator.core.gates import ConcurrencyLimit
from worker_abstraction.schedules import Schedule
from worker_abstraction.workflows import WORKFLOW_CAPABILITY, Workflow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def serve() -> Iterator[Callable[[Metrics], MetricsEndpoint]]:
    """Serves a metrics object on 127.0.0.1 and a free port; stopped at teardown."""
    endpoints: list[MetricsEndpoint] = []

    def _serve(metrics: Metrics) -> MetricsEndpoint:
        endpoints.append(metrics.serve(0, host="127.0.0.1"))
        return endpoints[-1]

    yield _serve
    for endpoint in endpoints:
        endpoint.close()


async def scrape(endpoint: MetricsEndpoint | str) -> Samples:
    """Every sample the endpoint (or URL) serves, by name and labels (fetched on a thread: the loop must keep
    turning)."""
    url = endpoint if isinstance(endpoint, str) else endpoint.url

    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    text = await asyncio.to_thread(fetch)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def labelled(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (found, labels), v in samples.items() if found == name}


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


async def test_the_orchestrator_counts_every_task_once_by_capability_and_final_status(
    registry: RegistryServer, start_worker: Callable[..., Any], serve: Callable[[Metrics], MetricsEndpoint]
) -> None:
    await start_worker()
    metrics = OrchestratorMetrics()
    endpoint = serve(metrics)
    async with AsyncOrchestrator(registry.address, metrics=metrics) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        echoes = [await orchestrator.execute_task("echo", {"text": str(n)}) for n in range(7)]
        explosions = [await orchestrator.execute_task("explode", {}) for _ in range(4)]
        stopped = [await orchestrator.execute_task("cooperative", {}) for _ in range(2)]
        for handle in echoes:
            await handle.result(timeout_seconds=5)
        for handle in explosions:
            with pytest.raises(TaskFailedError):
                await handle.result(timeout_seconds=5)
        for handle in stopped:
            assert await handle.cancel("enough")
            with pytest.raises(TaskCanceledError):
                await handle.result(timeout_seconds=5)
        samples = await scrape(endpoint)
    assert labelled(samples, "wa_tasks_total") == {
        labels(capability="echo", status="COMPLETED"): 7,
        labels(capability="explode", status="FAILED"): 4,
        labels(capability="cooperative", status="CANCELED"): 2,
    }
    for capability, count in (("echo", 7), ("explode", 4)):  # both reached a worker: waited, then ran
        assert value(samples, "wa_task_queue_wait_seconds_count", capability=capability) == count
        assert value(samples, "wa_task_run_seconds_count", capability=capability) == count
        assert value(samples, "wa_task_run_seconds_bucket", capability=capability, le="+Inf") == count
    assert value(samples, "wa_retries_total", capability="explode") is None  # task errors are not retried by default
    assert value(samples, "wa_dead_letters") == 0
    assert value(samples, "process_cpu_seconds_total") is not None  # its own registry describes the process too


async def test_retries_and_dead_letters_are_counted(
    registry: RegistryServer, start_worker: Callable[..., Any], serve: Callable[[Metrics], MetricsEndpoint]
) -> None:
    await start_worker()
    metrics = OrchestratorMetrics()
    endpoint = serve(metrics)
    policy = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01, retry_task_errors=True)
    async with AsyncOrchestrator(registry.address, metrics=metrics, retry_policy=policy) as orchestrator:
        await orchestrator.wait_for_workers("explode", timeout_seconds=5)
        handles = [await orchestrator.execute_task("explode", {}) for _ in range(2)]
        for handle in handles:
            with pytest.raises(TaskFailedError):
                await handle.result(timeout_seconds=5)
        samples = await scrape(endpoint)
    assert value(samples, "wa_retries_total", capability="explode") == 4  # two retries each
    assert value(samples, "wa_dead_letters") == 2
    assert labelled(samples, "wa_tasks_total") == {labels(capability="explode", status="FAILED"): 2}
    assert value(samples, "wa_task_run_seconds_count", capability="explode") == 2  # once per task, not per attempt


async def test_queue_depth_in_flight_and_circuits_are_read_when_scraped(
    registry: RegistryServer,
    start_worker: Callable[..., Any],
    gates: Gates,
    serve: Callable[[Metrics], MetricsEndpoint],
) -> None:
    worker = await start_worker(max_concurrent_tasks=1)
    metrics = OrchestratorMetrics()
    endpoint = serve(metrics)
    async with AsyncOrchestrator(registry.address, metrics=metrics) as orchestrator:
        await orchestrator.wait_for_workers("wait_for", timeout_seconds=5)
        running = await orchestrator.execute_task("wait_for", {"name": "slot"})
        waiting = [
            await orchestrator.execute_task("wait_for", {"name": "slot"}, priority=priority) for priority in (0, 0, 5)
        ]
        await eventually(lambda: running.worker_id == worker.worker_id, what="the first task reached the worker")
        samples = await scrape(endpoint)
        assert labelled(samples, "wa_queue_depth") == {
            labels(capability="wait_for", priority="5"): 1,
            labels(capability="wait_for", priority="0"): 2,
        }
        assert labelled(samples, "wa_tasks_in_flight") == {labels(worker_id=worker.worker_id): 1}
        assert labelled(samples, "wa_circuit_state") == {
            labels(worker_id=worker.worker_id, state="closed"): 1,
            labels(worker_id=worker.worker_id, state="open"): 0,
            labels(worker_id=worker.worker_id, state="half-open"): 0,
        }
        gates.open("slot")
        for handle in [running, *waiting]:
            assert await handle.result(timeout_seconds=5) == "slot"
        samples = await scrape(endpoint)
        assert labelled(samples, "wa_queue_depth") == {}
        assert labelled(samples, "wa_tasks_in_flight") == {labels(worker_id=worker.worker_id): 0}
    # Closed: the gauges read from its loop are gone, the counters stay.
    samples = await scrape(endpoint)
    assert labelled(samples, "wa_tasks_in_flight") == {} and value(samples, "wa_dead_letters") is None
    assert labelled(samples, "wa_tasks_total") == {labels(capability="wait_for", status="COMPLETED"): 4}


async def test_capability_labels_past_the_bound_share_one_value(
    registry: RegistryServer, start_worker: Callable[..., Any], serve: Callable[[Metrics], MetricsEndpoint]
) -> None:
    await start_worker()
    metrics = OrchestratorMetrics(max_capabilities=1)
    endpoint = serve(metrics)
    async with AsyncOrchestrator(registry.address, metrics=metrics) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        await (await orchestrator.execute_task("echo", {"text": "a"})).result(timeout_seconds=5)
        for capability in ("sleepy", "explode"):
            await (await orchestrator.execute_task(capability, {"seconds": 0} if capability == "sleepy" else {})).wait(
                timeout_seconds=5
            )
        samples = await scrape(endpoint)
    assert labelled(samples, "wa_tasks_total") == {
        labels(capability="echo", status="COMPLETED"): 1,
        labels(capability=OTHER, status="COMPLETED"): 1,
        labels(capability=OTHER, status="FAILED"): 1,
    }


@pytest.fixture
async def quick_suspicion() -> AsyncIterator[tuple[RegistryServer, RegistryMetrics]]:
    """A registry with metrics that lists a silent worker SUSPECT after 0.3 s and keeps it for 30 s."""
    metrics = RegistryMetrics()
    server = RegistryServer(
        port=0, ttl_seconds=30, suspect_after_seconds=0.3, sweep_interval_seconds=0.05, metrics=metrics
    )
    await server.start()
    yield server, metrics
    await server.stop(None)


async def test_the_registry_reports_workers_by_state_and_counts_registrations_heartbeats_and_evictions(
    quick_suspicion: tuple[RegistryServer, RegistryMetrics],
    start_worker: Callable[..., Any],
    serve: Callable[[Metrics], MetricsEndpoint],
) -> None:
    registry, metrics = quick_suspicion
    endpoint = serve(metrics)
    await start_worker(registry=registry.address)  # heartbeats every 0.1 s: stays ACTIVE
    client = RegistryClient(registry.address)
    try:
        await client.register(WorkerInfo(worker_id="silent", name="silent", address="127.0.0.1:6000"))

        async def one_suspect() -> bool:
            found = await scrape(endpoint)
            return labelled(found, "wa_workers") == {labels(state="ACTIVE"): 1, labels(state="SUSPECT"): 1}

        await eventually(one_suspect, what="the silent worker listed SUSPECT")
        # A new worker on the silent one's address replaces it: the registry evicts it at once.
        await client.register(WorkerInfo(worker_id="successor", name="successor", address="127.0.0.1:6000"))
        samples = await scrape(endpoint)
    finally:
        await client.aclose()
    assert labelled(samples, "wa_workers") == {labels(state="ACTIVE"): 2, labels(state="SUSPECT"): 0}
    assert value(samples, "wa_worker_registrations_total") == 3
    assert value(samples, "wa_worker_evictions_total") == 1
    heartbeats = value(samples, "wa_heartbeats_total")
    assert heartbeats is not None and heartbeats >= 1


async def test_a_worker_counts_its_own_tasks_and_reports_those_running(
    registry: RegistryServer,
    start_worker: Callable[..., Any],
    gates: Gates,
    serve: Callable[[Metrics], MetricsEndpoint],
) -> None:
    metrics = WorkerMetrics()
    endpoint = serve(metrics)
    await start_worker(metrics=metrics)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        for handle in [await orchestrator.execute_task("echo", {"text": "x"}) for _ in range(3)]:
            await handle.result(timeout_seconds=5)
        for handle in [await orchestrator.execute_task("explode", {}) for _ in range(2)]:
            assert (await handle.wait(timeout_seconds=5)).status is TaskStatus.FAILED
        held = await orchestrator.execute_task("wait_for", {"name": "held"})

        async def counted() -> bool:
            found = await scrape(endpoint)
            return value(found, "wa_worker_tasks_running") == 1 and labelled(found, "wa_worker_tasks_total") == {
                labels(capability="echo", status="COMPLETED"): 3,
                labels(capability="explode", status="FAILED"): 2,
            }

        # The worker counts a task once its runner is done, a moment after the result went out.
        await eventually(counted, what="three echoes and two explosions counted, one task running")
        gates.open("held")
        await held.result(timeout_seconds=5)

        async def idle() -> bool:
            found = await scrape(endpoint)
            return value(found, "wa_worker_tasks_running") == 0

        await eventually(idle, what="no task running")
    samples = await scrape(endpoint)
    assert value(samples, "wa_worker_task_seconds_count", capability="echo") == 3
    assert value(samples, "wa_worker_tasks_total", capability="wait_for", status="COMPLETED") == 1


async def test_store_commits_are_timed(tmp_path: Path, serve: Callable[[Metrics], MetricsEndpoint]) -> None:
    registry = RegistryServer(port=0)
    await registry.start()
    metrics = OrchestratorMetrics()
    endpoint = serve(metrics)
    try:
        async with OrchestratorServer(
            registry.address, port=0, store_path=str(tmp_path / "tasks.db"), metrics=metrics,
            queue_without_workers=True, discovery_timeout_seconds=1,
        ) as server:  # fmt: skip
            await server.orchestrator.execute_task("nobody_offers_this", {})
            samples = await scrape(endpoint)
    finally:
        await registry.stop(None)
    commits = value(samples, "wa_store_write_seconds_count")
    assert commits is not None and commits >= 1
    assert labelled(samples, "wa_queue_depth") == {labels(capability="nobody_offers_this", priority="0"): 1}


async def test_a_scrape_on_the_loop_itself_leaves_out_the_gauges_read_there_instead_of_waiting_for_it(
    registry: RegistryServer,
) -> None:
    metrics = OrchestratorMetrics()
    async with AsyncOrchestrator(registry.address, metrics=metrics):
        began = time.monotonic()
        text = generate_latest(metrics.registry).decode()  # on the loop: it cannot hand the read to itself
        assert time.monotonic() - began < 1.0  # (a wait for the loop would last READ_TIMEOUT_SECONDS, 5 s)
    assert "wa_dead_letters" not in text and "wa_tasks_total" in text


async def test_a_workflow_is_counted_as_its_run_and_each_step_as_its_task(
    registry: RegistryServer, start_worker: Callable[..., Any], serve: Callable[[Metrics], MetricsEndpoint]
) -> None:
    await start_worker()
    metrics = OrchestratorMetrics()
    endpoint = serve(metrics)
    good = Workflow("good")
    first = good.step("first", "echo", {"text": "a"})
    good.step("second", "echo", {"text": first["text"]})
    bad = Workflow("bad")
    bad.step("boom", "explode", {})
    async with AsyncOrchestrator(registry.address, metrics=metrics) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        assert (await (await orchestrator.run_workflow(good)).wait(5)).status is TaskStatus.COMPLETED
        assert (await (await orchestrator.run_workflow(bad)).wait(5)).status is TaskStatus.FAILED
        samples = await scrape(endpoint)
    assert labelled(samples, "wa_tasks_total") == {
        labels(capability=WORKFLOW_CAPABILITY, status="COMPLETED"): 1,
        labels(capability=WORKFLOW_CAPABILITY, status="FAILED"): 1,
        labels(capability="echo", status="COMPLETED"): 2,
        labels(capability="explode", status="FAILED"): 1,
    }
    assert value(samples, "wa_task_run_seconds_count", capability=WORKFLOW_CAPABILITY) == 2  # each run's length


async def test_tasks_held_by_a_limit_and_the_schedules_are_reported(
    registry: RegistryServer,
    start_worker: Callable[..., Any],
    serve: Callable[[Metrics], MetricsEndpoint],
    gates: Gates,
) -> None:
    await start_worker()
    metrics = OrchestratorMetrics()
    endpoint = serve(metrics)
    async with AsyncOrchestrator(
        registry.address, metrics=metrics, concurrency_limits=[ConcurrencyLimit("wait_for", 1)]
    ) as orchestrator:
        await orchestrator.wait_for_workers("wait_for", timeout_seconds=5)
        held = [await orchestrator.execute_task("wait_for", {"name": "limit"}) for _ in range(3)]
        await orchestrator.add_schedule(Schedule("hourly", "echo", {"text": "x"}, cron="0 * * * *"))
        await orchestrator.add_schedule(Schedule("later", "echo", {"text": "y"}, every_seconds=3600, paused=True))
        waiting = await orchestrator.execute_task("echo", {"text": "later"}, delay_seconds=3600)
        samples = await scrape(endpoint)
        assert await waiting.cancel("done with it")
        gates.open("limit")
        for handle in held:
            await handle.result(timeout_seconds=5)
    assert value(samples, "wa_tasks_limited", capability="wait_for") == 2
    assert value(samples, "wa_schedules", state="active") == 1 and value(samples, "wa_schedules", state="paused") == 1
    assert value(samples, "wa_tasks_delayed") == 1
