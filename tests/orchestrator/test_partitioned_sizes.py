"""What fits in a task shared on NATS (PartitionedHome, on a real nats-server with its default 1 MiB
max_payload): arguments its document cannot hold are refused at submission, saying what to raise; an output
its record cannot hold fails the task (OutputTooLarge) the same way for its caller and on every other
replica, never left half-finished; a large output that fits is kept and read back everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import eventually
from tests.nats_server import NatsServer
from tests.orchestrator.replicas import Replica, replicas
from worker_abstraction import AsyncOrchestrator, InvalidParametersError, RegistryServer, TaskFailedError, TaskStatus

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def replica(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Replica]:
    """Start one more orchestrator on the shared NATS (its own connection, as a separate daemon has)."""
    async with replicas(registry.address, nats_server.url, partitions=4) as start:
        yield start


async def test_arguments_the_shared_store_cannot_hold_are_refused_naming_the_limit(
    replica: Replica, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    orchestrator, _ = await replica("a")
    await orchestrator.wait_for_workers("echo", timeout_seconds=5)
    with pytest.raises(InvalidParametersError, match="max_payload is 1,048,576 bytes: raise it there"):
        await orchestrator.execute_task("echo", {"text": "x" * 600_000})
    assert await orchestrator.tasks() == []
    # Arguments that fit run as ever.
    assert await (await orchestrator.execute_task("echo", {"text": "x" * 100_000})).result(timeout_seconds=10)


async def test_an_output_the_shared_store_cannot_hold_fails_the_task_alike_everywhere(
    replica: Replica, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    runner, _ = await replica("runner")
    other, _ = await replica("other")
    await runner.wait_for_workers("echo", timeout_seconds=5)
    handle = await runner.execute_task("echo", {"text": "x" * 1000, "times": 1200})  # 1.2 MB out
    with pytest.raises(TaskFailedError, match="the task store keeps at most"):
        await handle.result(timeout_seconds=15)
    assert handle.updates[-1].failure is not None and handle.updates[-1].failure.type == "OutputTooLarge"
    watched = await other.watch(handle.task_id)
    with pytest.raises(TaskFailedError, match="the task store keeps at most"):
        await asyncio.wait_for(watched.result(), 15)

    await eventually(lambda: _status_is(other, handle.task_id, TaskStatus.FAILED), what="FAILED on the other too")
    # An output that fits (half a MB) is kept, and read back from the other replica.
    kept = await runner.execute_task("echo", {"text": "y" * 1000, "times": 500})
    assert len((await kept.result(timeout_seconds=15))["text"]) == 500_000
    await eventually(lambda: _status_is(other, kept.task_id, TaskStatus.COMPLETED), what="COMPLETED on the other")
    assert len((await other.task(kept.task_id)).output["text"]) == 500_000


async def _status_is(orchestrator: AsyncOrchestrator, task_id: str, status: TaskStatus) -> bool:
    return (await orchestrator.task(task_id)).status is status
