"""The same through a daemon: RemoteOrchestrator's calls, the RPCs with the generated stubs alone (as a program
in another language would use them), a daemon restarted while a task waits for input, and who answered."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.hitl.workers import AskingWorker
from worker_abstraction import (
    InvalidAnswerError,
    OrchestratorServer,
    RegistryServer,
    RemoteOrchestrator,
    TaskCanceledError,
    TaskStatus,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(60)


async def test_input_approval_and_chunks_through_the_daemon(
    registry: RegistryServer, start_worker: Any, tmp_path: Path
) -> None:
    await start_worker(AskingWorker)
    store = str(tmp_path / "tasks.db")
    async with (
        OrchestratorServer(registry.address, port=0, store_path=store, approval_required=["noop"]) as daemon,
        RemoteOrchestrator(daemon.address) as remote,
    ):
        await remote.wait_for_workers("review", timeout_seconds=10)
        handle = await remote.execute_task("review", {"item": "v3"})
        request = await handle.input_requested(timeout_seconds=10)
        assert request.prompt == "Ship v3?" and request.request_id
        with pytest.raises(InvalidAnswerError) as refused:
            await handle.provide_input({"note": "no decision"})
        assert any("approved" in problem for problem in refused.value.problems)
        assert (await remote.task(handle.task_id)).status is TaskStatus.INPUT_REQUIRED
        await handle.provide_input({"approved": True})
        assert (await handle.result(timeout_seconds=10))["answer"] == {"approved": True}
        [exchange] = (await remote.task(handle.task_id)).inputs
        assert exchange.request.prompt == "Ship v3?" and exchange.answer is not None
        assert exchange.answer.value == {"approved": True}

        gated = await remote.execute_task("noop", {})
        assert (await remote.task(gated.task_id)).status is TaskStatus.APPROVAL_REQUIRED
        assert await remote.approve(gated.task_id, "fine") is TaskStatus.PENDING
        assert await gated.result(timeout_seconds=10) == "ok"
        denied = await remote.execute_task("noop", {})
        assert await remote.deny(denied.task_id, "too risky") is TaskStatus.CANCELED
        with pytest.raises(TaskCanceledError, match="too risky"):
            await denied.result(timeout_seconds=10)

        streaming = await remote.execute_task("tokens", {"count": 3000})
        indexes = [chunk.index async for chunk in streaming.stream()]
        assert indexes == list(range(1, 3001))
        again = await remote.watch(streaming.task_id)
        assert [c.index async for c in again.stream(after=2990)] == list(range(2991, 3001))


async def test_the_rpcs_from_the_generated_stubs_alone(registry: RegistryServer, start_worker: Any) -> None:
    await start_worker(AskingWorker)
    async with (
        OrchestratorServer(registry.address, port=0, approval_required=["noop"]) as daemon,
        aio.insecure_channel(daemon.address) as channel,
    ):
        stub = pb_grpc.OrchestratorServiceStub(channel)
        await RemoteOrchestrator(daemon.address).wait_for_workers("review", timeout_seconds=10)
        submitted = await stub.SubmitTask(
            pb.SubmitTaskRequest(
                task=pb.Task(capability_name="review", parameters=[pb.TaskParameter(key="item", value_json='"z"')])
            )
        )
        statuses = []
        async for update in stub.WatchTask(pb.WatchTaskRequest(task_id=submitted.task_id)):
            statuses.append(update.status)
            if update.status == pb.TASK_STATUS_INPUT_REQUIRED:
                assert update.input_request.prompt == "Ship z?"
                with pytest.raises(aio.AioRpcError) as wrong:
                    await stub.ProvideInput(
                        pb.ProvideInputRequest(task_id=submitted.task_id, value_json='{"approved": 1}')
                    )
                assert wrong.value.code() is grpc.StatusCode.INVALID_ARGUMENT
                assert "boolean" in (wrong.value.details() or "")
                answered = await stub.ProvideInput(
                    pb.ProvideInputRequest(task_id=submitted.task_id, value_json='{"approved": true}')
                )
                assert answered.request_id == update.input_request.request_id
            if update.status == pb.TASK_STATUS_COMPLETED:
                break
        assert pb.TASK_STATUS_INPUT_REQUIRED in statuses
        for bad, code in (
            (pb.ProvideInputRequest(task_id="nope", value_json="1"), grpc.StatusCode.NOT_FOUND),
            (
                pb.ProvideInputRequest(task_id=submitted.task_id, value_json="1"),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
            (
                pb.ProvideInputRequest(task_id=submitted.task_id, value_json="{"),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
            (pb.ProvideInputRequest(task_id="", value_json="1"), grpc.StatusCode.INVALID_ARGUMENT),
            (pb.ProvideInputRequest(task_id="x", value_json=""), grpc.StatusCode.INVALID_ARGUMENT),
        ):
            with pytest.raises(aio.AioRpcError) as refused:
                await stub.ProvideInput(bad)
            assert refused.value.code() is code, (bad, refused.value.details())
        with pytest.raises(aio.AioRpcError) as refused:
            await stub.ApproveTask(pb.ApprovalRequest(task_id=submitted.task_id))
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION


@contextlib.asynccontextmanager
async def _daemon_on(registry: RegistryServer, store: Path) -> AsyncIterator[RemoteOrchestrator]:
    """A daemon on the task store `store` and a caller of it, both closed at the end: two in a row restart it."""
    async with (
        OrchestratorServer(registry.address, port=0, store_path=str(store)) as daemon,
        RemoteOrchestrator(daemon.address) as remote,
    ):
        yield remote


async def test_a_waiting_task_survives_a_daemon_restart(
    registry: RegistryServer, start_worker: Any, tmp_path: Path
) -> None:
    await start_worker(AskingWorker)
    store = tmp_path / "tasks.db"
    async with _daemon_on(registry, store) as remote:
        await remote.wait_for_workers("review", timeout_seconds=10)
        handle = await remote.execute_task("review", {"item": "restart"})
        await handle.input_requested(timeout_seconds=10)
    async with _daemon_on(registry, store) as remote:
        again = await remote.watch(handle.task_id)
        request = await again.input_requested(timeout_seconds=10)
        assert request.prompt == "Ship restart?"
        await remote.provide_input(handle.task_id, {"approved": True})
        assert (await again.result(timeout_seconds=10))["answer"] == {"approved": True}


async def test_a_task_waiting_for_approval_survives_a_daemon_restart(
    registry: RegistryServer, start_worker: Any, tmp_path: Path
) -> None:
    await start_worker(AskingWorker)
    store = tmp_path / "tasks.db"
    async with _daemon_on(registry, store) as remote:
        await remote.wait_for_workers("noop", timeout_seconds=10)
        gated = await remote.execute_task("noop", {}, require_approval=True)
        assert (await remote.task(gated.task_id)).status is TaskStatus.APPROVAL_REQUIRED
    async with _daemon_on(registry, store) as remote:
        assert (await remote.task(gated.task_id)).status is TaskStatus.APPROVAL_REQUIRED
        await remote.approve(gated.task_id, "after the restart")
        assert await (await remote.watch(gated.task_id)).result(timeout_seconds=10) == "ok"
