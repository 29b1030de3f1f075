"""Scenario 5: an orchestrator process with 100,000 tasks queued and no free worker; its RSS.

Per round, a fresh worker with one slot (taken by a long sleeping task) and a fresh `bench.queued`
process, which holds one AsyncOrchestrator and submits the no-op tasks; they all wait in its queue.
"""

from __future__ import annotations

import asyncio

from bench.config import Config
from bench.measure import Figure, Results
from bench.procs import Children, rss_mb
from bench.scenarios.tasks import start_registry, start_worker


async def measure(children: Children, config: Config) -> Results:
    """orchestrator_rss_mb_100k_queued (MiB), and the time it took to queue them."""
    registry = await start_registry(children, "queue-registry")
    rss: list[float] = []
    idle: list[float] = []
    seconds: list[float] = []
    errors: dict[str, int] = {}
    for round_ in range(1, config.rounds + 1):
        # --grace 0: the slot-holding task must not delay the worker's exit.
        extra = ("--max-concurrent", "1", "--grace", "0")
        args = ("-m", "bench.queued", "--registry", registry.address, "--tasks", str(config.queued_tasks))
        # Started together: the orchestrator waits for the worker to show up in the registry.
        worker, orchestrator = await asyncio.gather(
            start_worker(children, f"queue-worker-{round_}", registry.address, *extra),
            children.start(f"queue-orchestrator-{round_}", *args, drain=False),
        )
        await orchestrator.read_event("ready")
        idle.append(rss_mb(orchestrator.pid))
        queued = await orchestrator.read_event("queued", timeout_seconds=300)
        rss.append(rss_mb(orchestrator.pid))
        seconds.append(queued["seconds"])
        if queued["waiting"] != config.queued_tasks:
            errors["not_waiting"] = errors.get("not_waiting", 0) + config.queued_tasks - queued["waiting"]
        for name, count in queued["errors"].items():
            errors[name] = errors.get(name, 0) + count
        await children.stop(orchestrator)
        await children.stop(worker)
    await children.stop(registry)
    results = Results()
    results.figures["orchestrator_rss_mb_100k_queued"] = Figure(tuple(rss))
    results.figures["orchestrator_queue_seconds_100k"] = Figure(tuple(seconds))
    idle_mb = Figure(tuple(idle)).median
    results.extras["orchestrator_rss_mb_idle"] = idle_mb
    results.extras["orchestrator_queued_tasks"] = config.queued_tasks
    results.extras["orchestrator_bytes_per_queued_task"] = (
        (Figure(tuple(rss)).median - idle_mb) * 2**20 / config.queued_tasks
    )
    results.extras["orchestrator_queue_errors"] = errors
    return results
