"""Scenarios 1–3: tasks through one AsyncOrchestrator (this process) to two `wa worker` processes.

1. sequential no-op task latency: `await (await orch.execute_task("noop")).result()`, one at a time;
2. throughput of no-op tasks at 256 in flight;
3. throughput of 10 ms sleeping tasks at 1,000 in flight (concurrency, not CPU).

Also, as an extra, the sequential latency through the blocking `Orchestrator` facade.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from bench.config import Config
from bench.measure import Errors, Figure, LatencyFigures, Results, latency_rounds, percentile, throughput_rounds
from bench.procs import Child, Children, CpuWatch
from worker_abstraction import AsyncOrchestrator, Orchestrator

WORKERS = 2
REGISTRY_READY = "registry listening on "
WORKER_READY = "worker "
WORKER_CLASS = "bench.workers:NoopWorker"


async def start_registry(children: Children, name: str) -> Child:
    """`wa registry` on a free port, as the issue runs it."""
    args = ("-m", "worker_abstraction.cli", "registry", "--port", "0", "--ttl", "30")
    return await children.start(name, *args, ready_prefix=REGISTRY_READY)


async def start_worker(children: Children, name: str, registry: str, *extra: str) -> Child:
    """`wa worker bench.workers:NoopWorker` on a free port, registered with `registry`."""
    args = ("-m", "worker_abstraction.cli", "worker", WORKER_CLASS, "--port", "0", "--registry", registry, *extra)
    return await children.start(name, *args, ready_prefix=WORKER_READY)


async def measure(children: Children, config: Config) -> Results:
    """Run scenarios 1–3 against one registry and two worker processes.

    Returns:
        task_p50_us / task_p99_us, task_throughput_256, sleep_throughput_1000 (tasks/s) and
        sync_task_p50_us / _p99_us; extras: CPU shares of this process and the workers at 256 in flight,
        and the errors seen, by type.
    """
    registry = await start_registry(children, "tasks-registry")
    workers = await asyncio.gather(
        *(start_worker(children, f"tasks-worker-{i}", registry.address) for i in range(WORKERS))
    )
    results = Results()
    figures = results.figures
    errors = Errors()
    async with AsyncOrchestrator(registry.address) as orch:
        await orch.wait_for_workers("noop", count=WORKERS, timeout_seconds=30)

        async def noop() -> Any:
            handle = await orch.execute_task("noop", {})
            return await handle.result()

        async def sleep() -> Any:
            handle = await orch.execute_task("sleep_ms", {"ms": config.sleep_ms})
            return await handle.result()

        latency = await latency_rounds(
            noop,
            warmup=config.task_latency_warmup,
            count=config.task_latency_count,
            rounds=config.rounds,
            errors=errors,
        )
        figures["task_p50_us"], figures["task_p99_us"] = latency.p50_us, latency.p99_us

        pids = {"orchestrator": os.getpid()} | {f"worker_{i}": w.pid for i, w in enumerate(workers)}
        cpu = CpuWatch(pids)
        figures["task_throughput_256"] = await throughput_rounds(
            noop,
            warmup=config.task_throughput_warmup,
            count=config.task_throughput_count,
            in_flight=256,
            rounds=config.rounds,
            errors=errors,
            cpu=cpu,
        )
        results.extras["task_cpu_share_256"] = cpu.shares
        results.extras["task_cpu_us_per_task_256"] = cpu.per_call_us(config.task_throughput_count * config.rounds)
        figures["sleep_throughput_1000"] = await throughput_rounds(
            sleep,
            warmup=config.sleep_in_flight,
            count=config.sleep_throughput_count,
            in_flight=config.sleep_in_flight,
            rounds=config.rounds,
            errors=errors,
        )

    sync = await asyncio.to_thread(_sync_latency_rounds, registry.address, config)
    figures["sync_task_p50_us"], figures["sync_task_p99_us"] = sync.p50_us, sync.p99_us
    results.extras["task_errors"] = dict(errors.counts)
    results.extras["task_error_examples"] = errors.examples
    for worker in workers:
        await children.stop(worker)
    await children.stop(registry)
    return results


def _sync_latency_rounds(registry: str, config: Config) -> LatencyFigures:
    """Scenario 1 through the blocking facade, from a plain thread (the facade runs its own loop thread)."""
    p50: list[float] = []
    p99: list[float] = []
    per_second: list[float] = []
    with Orchestrator(registry) as orch:
        orch.wait_for_workers("noop", count=WORKERS, timeout_seconds=30)
        for round_ in range(config.rounds + 1):  # round 0 is the warm-up
            samples: list[float] = []
            began = time.perf_counter()
            for _ in range(config.task_latency_warmup if round_ == 0 else config.sync_latency_count):
                start = time.perf_counter()
                # Bounded, so a Ctrl-C (which cannot interrupt this thread) never waits out a lost task.
                orch.execute_task("noop", {}).result(timeout_seconds=10)
                samples.append(time.perf_counter() - start)
            if round_:
                p50.append(percentile(samples, 50) * 1e6)
                p99.append(percentile(samples, 99) * 1e6)
                per_second.append(len(samples) / (time.perf_counter() - began))
    return LatencyFigures(Figure(tuple(p50)), Figure(tuple(p99)), Figure(tuple(per_second)))
