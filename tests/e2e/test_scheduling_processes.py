"""Scheduling across real worker processes: slots respected, everything done, load spread evenly."""

from __future__ import annotations

import asyncio

from processes import FAST_REGISTRY, FAST_WORKER, Start

from worker_abstraction import AsyncOrchestrator, TaskStatus


async def test_two_thousand_tasks_over_four_two_slot_workers(start: Start) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    workers = await asyncio.gather(
        *(
            start("worker", "_slot_workers:SlotWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER)
            for _ in range(4)
        )
    )
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("noop", count=4, timeout_seconds=10)
        statuses = [
            h.status async for h in orchestrator.execute_many("noop", ({} for _ in range(2000)), max_pending=400)
        ]
        assert statuses == [TaskStatus.COMPLETED] * 2000
        seen = {}
        for worker in workers:
            handle = await orchestrator.execute_task("stats", {}, worker_id=worker.worker_id)
            seen[worker.worker_id] = await handle.result(timeout_seconds=10)
    assert sum(s["done"] for s in seen.values()) == 2000
    assert all(s["peak"] <= 2 for s in seen.values()), seen  # no worker ever ran more than its two slots
    # Every offer was taken: the orchestrator never sent a task to a full worker.
    assert sum(s["received"] for s in seen.values()) == 2000 + 4
    done = [s["done"] for s in seen.values()]
    assert max(done) <= 1.3 * min(done), done
