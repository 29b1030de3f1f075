"""The local home owns ids and idempotency keys: concurrent submissions of one key make one task, in memory
and in SQLite, and an id the caller chose is never reused, even when the first task has finished."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from worker_abstraction import AsyncOrchestrator, RegistryServer, TaskExistsError
from worker_abstraction.stores.sqlite import SqliteTaskStore

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["memory", "sqlite"])
async def orchestrator(
    request: pytest.FixtureRequest, registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[AsyncOrchestrator]:
    await start_worker()
    store = await SqliteTaskStore(tmp_path / "tasks.db").open() if request.param == "sqlite" else None
    try:
        async with AsyncOrchestrator(registry.address, task_store=store, keep_finished=1) as orchestrator:
            await orchestrator.wait_for_workers("echo", timeout_seconds=5)
            yield orchestrator
    finally:
        if store is not None:
            await store.close()


async def test_concurrent_submissions_of_one_key_make_one_task(orchestrator: AsyncOrchestrator) -> None:
    handles = await asyncio.gather(
        *(orchestrator.execute_task("echo", {"text": str(n)}, idempotency_key="the-one") for n in range(20))
    )
    assert len({handle.task_id for handle in handles}) == 1
    outputs = await asyncio.gather(*(handle.result(timeout_seconds=10) for handle in handles))
    assert len({str(output) for output in outputs}) == 1


async def test_a_key_still_names_its_task_after_it_ended_and_left_memory(
    orchestrator: AsyncOrchestrator, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params["orchestrator"] == "memory":
        pytest.skip("without a store a finished task is kept only while it is among the keep_finished latest")
    first = await orchestrator.execute_task("echo", {"text": "first"}, idempotency_key="kept")
    await first.result(timeout_seconds=10)
    for n in range(3):  # (keep_finished=1: the first run leaves memory)
        await (await orchestrator.execute_task("echo", {"text": str(n)})).result(timeout_seconds=10)
    again = await orchestrator.execute_task("echo", {"text": "second"}, idempotency_key="kept")
    assert again.task_id == first.task_id
    assert await again.result(timeout_seconds=10) == {"text": "first"}


async def test_an_id_the_caller_chose_is_never_taken_twice(orchestrator: AsyncOrchestrator) -> None:
    results = await asyncio.gather(
        *(orchestrator.execute_task("echo", {"text": "x"}, task_id="mine") for _ in range(5)), return_exceptions=True
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert len(accepted) == 1 and all(isinstance(r, TaskExistsError) for r in results if r not in accepted)
    await accepted[0].result(timeout_seconds=10)
    with pytest.raises(TaskExistsError):
        await orchestrator.execute_task("echo", {"text": "x"}, task_id="mine")
