"""Input, approvals and streamed output on the shared NATS home, through two orchestrators: the task runs on
one, and the other sees its question and its chunks, and answers it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import eventually
from tests.hitl.workers import AskingWorker
from tests.nats_server import NatsServer
from tests.orchestrator.replicas import Replica, replicas
from worker_abstraction import RegistryServer, TaskCanceledError, TaskNotWaitingError, TaskStatus

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def replica(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Replica]:
    async with replicas(registry.address, nats_server.url, partitions=4, lease_seconds=10.0) as start:
        yield start


async def test_one_orchestrator_runs_the_task_and_the_other_answers_and_streams_it(
    replica: Replica, start_worker: Any
) -> None:
    await start_worker(AskingWorker)
    first, _ = await replica("a")
    await first.wait_for_workers("review", timeout_seconds=10)
    handle = await first.execute_task("review", {"item": "shared"})
    request = await handle.input_requested(timeout_seconds=20)
    assert request.prompt == "Ship shared?"
    record = await first.task(handle.task_id)
    assert record.status is TaskStatus.INPUT_REQUIRED and record.input_request is not None
    second, _ = await replica("b")
    await second.wait_for_workers("review", timeout_seconds=10)
    seen = await second.task(handle.task_id)
    assert seen.input_request is not None and seen.input_request.prompt == "Ship shared?"
    await second.provide_input(handle.task_id, {"approved": True})
    assert (await handle.result(timeout_seconds=20))["answer"] == {"approved": True}

    streaming = await first.execute_task("tokens", {"count": 500})
    watched = await second.watch(streaming.task_id)
    assert [chunk.index async for chunk in watched.stream()] == list(range(1, 501))
    assert await streaming.result(timeout_seconds=20) == 500

    async def stored_finished() -> bool:  # (the other reads it once the end is stored: written behind)
        return (await second.task(streaming.task_id)).status is TaskStatus.COMPLETED

    await eventually(stored_finished, timeout_seconds=10, what="the streamed task's stored end")
    late = await second.watch(streaming.task_id)  # (a reader that comes after the end still gets every chunk)
    assert [chunk.index async for chunk in late.stream()] == list(range(1, 501))

    # Approved, and denied, through the orchestrator that does not run them.
    gated = await first.execute_task("noop", {}, require_approval=True)
    assert (await first.task(gated.task_id)).status is TaskStatus.APPROVAL_REQUIRED
    assert (await second.task(gated.task_id)).status is TaskStatus.APPROVAL_REQUIRED
    assert await second.approve(gated.task_id, "fine") is TaskStatus.PENDING
    assert await gated.result(timeout_seconds=20) == "ok"
    decided = (await first.task(gated.task_id)).approval
    assert decided is not None and decided.approved and decided.reason == "fine"

    async def stored_with_its_decision() -> bool:  # (the other reads it once the end is stored: written behind)
        record = await second.task(gated.task_id)
        return record.status is TaskStatus.COMPLETED and record.approval == decided

    await eventually(stored_with_its_decision, timeout_seconds=10, what="the decision in the stored record")
    refused = await first.execute_task("noop", {}, require_approval=True)
    await second.deny(refused.task_id, "not now")
    with pytest.raises(TaskCanceledError, match="not now"):
        await refused.result(timeout_seconds=20)
    with pytest.raises(TaskNotWaitingError):
        await second.approve(refused.task_id)
