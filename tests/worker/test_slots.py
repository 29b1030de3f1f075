"""A worker's slots by default: as many as its threads when a plain `def` capability needs one, 100 when all
are async; tasks past them wait in the orchestrator's queue, where it shows them. A plain handler's time
counts from when a thread starts it, not while it waited for one."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any

from worker_abstraction import AsyncOrchestrator, BaseWorker, RegistryServer, TaskContext, TaskStatus, capability
from worker_abstraction.worker.base import ASYNC_SLOTS, default_threads


class AsyncOnly(BaseWorker):
    @capability
    async def ping(self) -> str:
        """Answer."""
        return "pong"


class Plain(BaseWorker):
    gate = threading.Event()

    @capability
    def hold(self) -> str:
        """Hold a thread until the gate opens."""
        if not type(self).gate.wait(timeout=20):
            raise TimeoutError("the gate never opened")
        return "held"

    @capability
    def remaining(self, ctx: TaskContext) -> float | None:
        """Seconds left before the deadline, as the handler starts."""
        return ctx.time_remaining_seconds()


async def test_default_slots_follow_the_threads_or_the_async_default() -> None:
    assert AsyncOnly().slots == ASYNC_SLOTS
    assert Plain().slots == default_threads() == min(32, (os.cpu_count() or 1) + 4)
    assert Plain(max_threads=3).slots == 3
    assert Plain(max_concurrent_tasks=7).slots == 7
    assert AsyncOnly(max_concurrent_tasks=0).slots == 0  # no limit, when asked for


async def test_tasks_past_the_slots_wait_in_the_orchestrators_queue(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    Plain.gate.clear()
    await start_worker(Plain, max_threads=2)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("hold", timeout_seconds=10)
        handles = [await orchestrator.execute_task("hold", {}) for _ in range(5)]
        assert sum(h.worker_id != "" for h in handles) == 2
        assert await orchestrator.queue_depths() == {"hold": {0: 3}}
        Plain.gate.set()
        async with asyncio.timeout(10):
            assert [await h.result() for h in handles] == ["held"] * 5


async def test_a_plain_handlers_timeout_counts_from_when_a_thread_starts_it(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    Plain.gate.clear()
    await start_worker(Plain, max_threads=1, max_concurrent_tasks=2)  # (more slots than threads: on purpose)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("hold", timeout_seconds=10)
        holder = await orchestrator.execute_task("hold", {})
        waiter = await orchestrator.execute_task("remaining", {}, timeout_seconds=10)
        async with asyncio.timeout(10):
            async for update in waiter:  # accepted by the worker, and waiting there for the one thread
                if update.status is TaskStatus.RUNNING:
                    break
        await asyncio.sleep(1.0)  # (the time it waits for a thread: what must not count)
        Plain.gate.set()
        async with asyncio.timeout(10):
            assert await holder.result() == "held"
            remaining = await waiter.result()
    assert remaining is not None and remaining > 9.5
