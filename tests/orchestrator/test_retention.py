"""Retention on a SQLite store: finished tasks past it are dropped (their ids then answer NOT_FOUND, saying
they may have expired; their idempotency keys make new tasks), unfinished ones never are, a capability can
have its own time, dead letters their own, and under steady load the file stops growing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gates
from worker_abstraction import AsyncOrchestrator, RegistryServer, RetryPolicy, TaskNotFoundError, TaskStatus
from worker_abstraction.observability.metrics import OrchestratorMetrics
from worker_abstraction.orchestrator.core.retention import Retention
from worker_abstraction.stores.sqlite import SqliteTaskStore

pytestmark = pytest.mark.timeout(120)

Start = Callable[..., Any]


@pytest.fixture
async def start(registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Start]:
    await start_worker(max_concurrent_tasks=64)
    opened: list[tuple[AsyncOrchestrator, SqliteTaskStore]] = []

    async def make(retention: Retention, metrics: OrchestratorMetrics | None = None) -> AsyncOrchestrator:
        store = await SqliteTaskStore(str(tmp_path / "tasks.db")).open()
        orchestrator = AsyncOrchestrator(
            registry.address, task_store=store, retention=retention, keep_finished=10, metrics=metrics
        )
        opened.append((orchestrator, store))
        await orchestrator.wait_for_workers("echo", timeout_seconds=10)
        return orchestrator

    yield make
    for orchestrator, store in opened:
        await orchestrator.aclose()
        await store.close()


async def test_finished_tasks_past_retention_expire_and_their_ids_and_keys_with_them(
    start: Start, gates: Gates
) -> None:
    metrics = OrchestratorMetrics()
    orch: AsyncOrchestrator = await start(Retention(finished_seconds=0, sweep_seconds=3600), metrics)
    done = [await orch.execute_task("echo", {"text": str(n)}, idempotency_key=f"k{n}") for n in range(30)]
    for handle in done:
        await handle.result(timeout_seconds=10)
    waiting = await orch.execute_task("wait_for", {"name": "later"})
    expired = await orch.engine.expire_now()
    assert set(expired) >= {h.task_id for h in done}
    assert waiting.task_id not in expired
    assert metrics.registry.get_sample_value("wa_tasks_expired_total") == len(expired)
    with pytest.raises(TaskNotFoundError, match="may have expired"):
        await orch.task(done[0].task_id)
    assert (await orch.task(waiting.task_id)).status in (TaskStatus.PENDING, TaskStatus.RUNNING)
    again = await orch.execute_task("echo", {"text": "0"}, idempotency_key="k0")
    assert again.task_id != done[0].task_id  # the key expired with its task: a new task
    gates.open("later")
    await waiting.result(timeout_seconds=10)


async def test_a_capability_may_be_kept_for_its_own_time_and_dead_letters_for_theirs(start: Start) -> None:
    retention = Retention(finished_seconds=3600, per_capability={"echo": 0}, dead_letters_seconds=0, sweep_seconds=3600)
    orch: AsyncOrchestrator = await start(retention)
    echo = await orch.execute_task("echo", {"text": "x"})
    kept = await orch.execute_task("sleepy", {"seconds": 0})
    failing = await orch.execute_task(
        "explode", {}, retry_policy=RetryPolicy(max_attempts=2, initial_backoff_seconds=0, retry_task_errors=True)
    )
    for handle in (echo, kept, failing):
        await handle.wait(timeout_seconds=10)
    assert [d.task_id for d in await orch.dead_letters()] == [failing.task_id]
    record = await orch.task(kept.task_id)  # its record says when it goes (its capability's time, 3600 s)
    assert record.expires_at is not None and record.last_update is not None
    assert abs(record.expires_at.timestamp() - record.last_update.timestamp_ns / 1e9 - 3600) < 0.01
    assert (await orch.task(echo.task_id)).expires_at is not None
    expired = await orch.engine.expire_now()
    assert echo.task_id in expired and kept.task_id not in expired and failing.task_id not in expired
    assert (await orch.task(kept.task_id)).status is TaskStatus.COMPLETED
    assert await orch.dead_letters() == []


async def test_under_steady_load_with_retention_the_store_stops_growing(start: Start, tmp_path: Path) -> None:
    orch: AsyncOrchestrator = await start(Retention(finished_seconds=0, sweep_seconds=3600))
    text = "x" * 4000
    sizes = []
    for _ in range(4):
        handles = [await orch.execute_task("echo", {"text": text}) for _ in range(300)]
        for handle in handles:
            await handle.result(timeout_seconds=30)
        await orch.engine.expire_now()
        sizes.append(await asyncio.to_thread(os.path.getsize, tmp_path / "tasks.db"))
    # The first round grows the file; the pages it frees are used again by the next rounds.
    assert sizes[3] <= sizes[1] * 1.1, sizes
