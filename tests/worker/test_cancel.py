"""CancelTask on the worker: cooperative first, forced after the grace period."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio

from tests.conftest import ToolWorker
from tests.worker.conftest import execute, failure_of, make_task
from worker_abstraction import BaseWorker, lifecycle
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.types import FailureOrigin, TaskFailure


@pytest.fixture
async def stub() -> AsyncIterator[pb_grpc.WorkerServiceStub]:
    worker: BaseWorker = ToolWorker(None, port=0, cancel_grace_seconds=0.2)
    await worker.start()
    async with aio.insecure_channel(worker.address) as channel:
        yield pb_grpc.WorkerServiceStub(channel)
    await worker.stop(grace_seconds=0.5)


async def _start(stub: pb_grpc.WorkerServiceStub, capability: str, **params: str) -> tuple[str, aio.Call]:
    task_id = uuid.uuid4().hex
    parameters = [pb.TaskParameter(key=k, value_json=f'"{v}"') for k, v in params.items()]
    request = pb.ExecuteTaskRequest(task=pb.Task(task_id=task_id, capability_name=capability, parameters=parameters))
    assert (await stub.ExecuteTask(request)).accepted
    call = stub.StreamTaskStatus(pb.GetTaskStatusRequest(task_id=task_id, from_start=True))
    return task_id, call


async def _final(call: aio.Call) -> pb.TaskResult:
    async with asyncio.timeout(5):
        return [r.result async for r in call][-1]  # type: ignore[attr-defined]


async def test_cooperative_handler_sees_the_request_and_ends_canceled(stub: pb_grpc.WorkerServiceStub) -> None:
    task_id, call = await _start(stub, "cooperative")
    response = await stub.CancelTask(pb.CancelTaskRequest(task_id=task_id, reason="user changed their mind"))
    assert response.canceled
    final = await _final(call)
    assert final.status == pb.TASK_STATUS_CANCELED and final.error_message == "user changed their mind"


async def test_handler_that_ignores_the_request_is_stopped_after_the_grace(stub: pb_grpc.WorkerServiceStub) -> None:
    task_id, call = await _start(stub, "wait_for", name="never-opened")
    await stub.CancelTask(pb.CancelTaskRequest(task_id=task_id, reason="too slow"))
    final = await _final(call)
    assert final.status == pb.TASK_STATUS_CANCELED and final.error_message == "too slow"
    # Stopped by force, but because someone asked: a cancel, not a worker failure.
    assert failure_of(final) == TaskFailure(lifecycle.CANCELED, "too slow", FailureOrigin.CANCELED, retryable=False)


async def test_finished_task_is_left_alone_and_unknown_is_not_found(stub: pb_grpc.WorkerServiceStub) -> None:
    task_id, call = await _start(stub, "echo", text="x")
    assert (await _final(call)).status == pb.TASK_STATUS_COMPLETED
    response = await stub.CancelTask(pb.CancelTaskRequest(task_id=task_id))
    assert not response.canceled and response.status == pb.TASK_STATUS_COMPLETED
    with pytest.raises(aio.AioRpcError) as missing:
        await stub.CancelTask(pb.CancelTaskRequest(task_id="nope"))
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("capability", ["returns_when_canceled", "thread_returns_when_canceled"])
async def test_handler_that_returns_normally_after_the_request_still_ends_canceled(
    edge_stub: pb_grpc.WorkerServiceStub, capability: str
) -> None:
    # The grace period is long: the handler returns on its own, it is not stopped by force.
    task = make_task(capability)
    assert (await execute(edge_stub, task)).accepted
    stream = edge_stub.StreamTaskStatus(pb.GetTaskStatusRequest(task_id=task.task_id, from_start=True))
    async with asyncio.timeout(5):
        while (await stream.read()).result.status != pb.TASK_STATUS_RUNNING:
            pass
        response = await edge_stub.CancelTask(pb.CancelTaskRequest(task_id=task.task_id, reason="not needed"))
        assert response.canceled
        updates = []
        while (message := await stream.read()) is not aio.EOF:
            updates.append(message.result)
    final = updates[-1]
    assert final.status == pb.TASK_STATUS_CANCELED and not final.output_json
    assert failure_of(final) == TaskFailure(lifecycle.CANCELED, "not needed", FailureOrigin.CANCELED, retryable=False)
