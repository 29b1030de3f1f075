"""WorkerService on a real server: accepting, rejecting, running and streaming tasks."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc import aio

from tests.conftest import Gates, ToolWorker
from worker_abstraction import BaseWorker, TaskStatus
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc


@pytest.fixture
async def worker() -> AsyncIterator[BaseWorker]:
    worker = ToolWorker(None, port=0)  # no registry: WorkerService alone
    await worker.start()
    yield worker
    await worker.stop(grace_seconds=0.5)


@pytest.fixture
async def stub(worker: BaseWorker) -> AsyncIterator[pb_grpc.WorkerServiceStub]:
    async with aio.insecure_channel(worker.address) as channel:
        yield pb_grpc.WorkerServiceStub(channel)


def task(capability: str, timeout_seconds: int = 0, **params: Any) -> pb.ExecuteTaskRequest:
    return pb.ExecuteTaskRequest(
        task=pb.Task(
            task_id=uuid.uuid4().hex,
            capability_name=capability,
            timeout_seconds=timeout_seconds,
            parameters=[pb.TaskParameter(key=k, value_json=json.dumps(v)) for k, v in params.items()],
        )
    )


async def updates(
    stub: pb_grpc.WorkerServiceStub, task_id: str, after: int = 0, from_start: bool = False
) -> list[pb.TaskResult]:
    async with asyncio.timeout(5):
        request = pb.GetTaskStatusRequest(task_id=task_id, after_sequence=after, from_start=from_start)
        return [r.result async for r in stub.StreamTaskStatus(request)]


async def test_accepted_task_streams_every_transition_to_completed(stub: pb_grpc.WorkerServiceStub) -> None:
    request = task("echo", text="ab", times=2)
    response = await stub.ExecuteTask(request)
    assert response.accepted and response.task_id == request.task.task_id
    log = await updates(stub, request.task.task_id, from_start=True)
    assert [TaskStatus(u.status).name for u in log] == ["PENDING", "RUNNING", "RUNNING", "COMPLETED"]
    assert [u.sequence for u in log] == [1, 2, 3, 4]
    assert log[2].progress == 0.5 and log[2].progress_message == "halfway"
    assert json.loads(log[-1].output_json) == {"text": "abab"}


async def test_late_subscriber_gets_the_final_result(stub: pb_grpc.WorkerServiceStub) -> None:
    request = task("echo", text="x")
    await stub.ExecuteTask(request)
    await updates(stub, request.task.task_id)  # wait for the end
    late = await updates(stub, request.task.task_id)
    assert len(late) == 1 and late[0].status == pb.TASK_STATUS_COMPLETED
    assert json.loads(late[0].output_json) == {"text": "x"}


async def test_stream_sends_current_state_first_then_changes(stub: pb_grpc.WorkerServiceStub, gates: Gates) -> None:
    request = task("wait_for", name="g1")
    await stub.ExecuteTask(request)
    call = stub.StreamTaskStatus(pb.GetTaskStatusRequest(task_id=request.task.task_id))
    async with asyncio.timeout(5):
        first = await call.read()
        assert first.result.status in (pb.TASK_STATUS_PENDING, pb.TASK_STATUS_RUNNING)
        gates.open("g1")
        rest = []
        while (message := await call.read()) is not aio.EOF:
            rest.append(message.result)
    assert rest[-1].status == pb.TASK_STATUS_COMPLETED
    assert [u.sequence for u in [first.result, *rest]] == list(range(first.result.sequence, 4))


async def test_resume_gets_exactly_the_updates_after_the_given_sequence(stub: pb_grpc.WorkerServiceStub) -> None:
    request = task("echo", text="x")
    await stub.ExecuteTask(request)
    full = await updates(stub, request.task.task_id, from_start=True)
    for seen in range(1, len(full) + 1):
        resumed = await updates(stub, request.task.task_id, after=seen)
        assert [u.sequence for u in resumed] == [u.sequence for u in full[seen:]]


async def test_resume_beyond_the_log_is_out_of_range(stub: pb_grpc.WorkerServiceStub) -> None:
    request = task("echo", text="x")
    await stub.ExecuteTask(request)
    with pytest.raises(aio.AioRpcError) as raised:
        await updates(stub, request.task.task_id, after=99)
    assert raised.value.code() is grpc.StatusCode.OUT_OF_RANGE


async def test_unknown_task_id_is_not_found(stub: pb_grpc.WorkerServiceStub) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await updates(stub, "no-such-task")
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND


async def test_capability_that_raises_fails_the_task_not_the_worker(stub: pb_grpc.WorkerServiceStub) -> None:
    request = task("explode", message="kaput")
    assert (await stub.ExecuteTask(request)).accepted
    final = (await updates(stub, request.task.task_id))[-1]
    assert final.status == pb.TASK_STATUS_FAILED
    assert final.error_message == "ValueError: kaput"
    after = task("echo", text="still alive")
    await stub.ExecuteTask(after)
    assert (await updates(stub, after.task.task_id))[-1].status == pb.TASK_STATUS_COMPLETED


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (task("no_such_tool"), "unknown capability"),
        (task("echo"), "missing required parameter 'text'"),
        (task("echo", text=3), "parameter 'text' expects string"),
        (task("echo", text="a", times="2"), "parameter 'times' expects integer"),
        (task("echo", text="a", colour="red"), "unknown parameter 'colour'"),
    ],
)
async def test_invalid_task_is_rejected_with_a_reason(
    stub: pb_grpc.WorkerServiceStub, request_: pb.ExecuteTaskRequest, reason: str
) -> None:
    response = await stub.ExecuteTask(request_)
    assert not response.accepted
    assert reason in response.message
    with pytest.raises(aio.AioRpcError):  # a rejected task leaves nothing behind
        await updates(stub, request_.task.task_id)


async def test_value_that_is_not_json_is_rejected(stub: pb_grpc.WorkerServiceStub) -> None:
    request = task("echo")
    request.task.parameters.append(pb.TaskParameter(key="text", value_json="{not json"))
    response = await stub.ExecuteTask(request)
    assert not response.accepted and "not valid JSON" in response.message


async def test_every_problem_is_listed(stub: pb_grpc.WorkerServiceStub) -> None:
    response = await stub.ExecuteTask(task("echo", times="x", extra=1))
    assert not response.accepted
    for problem in ("missing required parameter 'text'", "'times'", "unknown parameter 'extra'"):
        assert problem in response.message


async def test_task_without_id_is_invalid_argument(stub: pb_grpc.WorkerServiceStub) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.ExecuteTask(pb.ExecuteTaskRequest(task=pb.Task(capability_name="echo")))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_same_task_delivered_twice_runs_once(stub: pb_grpc.WorkerServiceStub, gates: Gates) -> None:
    request = task("wait_for", name="once")
    assert (await stub.ExecuteTask(request)).accepted
    again = await stub.ExecuteTask(request)
    assert again.accepted and again.message == "already accepted"
    gates.open("once")
    log = await updates(stub, request.task.task_id, from_start=True)
    assert [TaskStatus(u.status).name for u in log] == ["PENDING", "RUNNING", "COMPLETED"]


async def test_sync_capability_does_not_block_async_ones(
    stub: pb_grpc.WorkerServiceStub, worker: BaseWorker, gates: Gates
) -> None:
    blocked = task("blocking_wait", name="thread")
    await stub.ExecuteTask(blocked)
    quick = task("echo", text="meanwhile")
    await stub.ExecuteTask(quick)
    assert (await updates(stub, quick.task.task_id))[-1].status == pb.TASK_STATUS_COMPLETED
    assert worker.load == 1  # the plain function is still blocked in its thread
    gates.open("thread")
    assert (await updates(stub, blocked.task.task_id))[-1].status == pb.TASK_STATUS_COMPLETED


async def test_worker_info_describes_capabilities_and_real_address(
    stub: pb_grpc.WorkerServiceStub, worker: BaseWorker
) -> None:
    info = await stub.GetWorkerInfo(empty_pb2.Empty())
    assert info.address == worker.address and not info.address.endswith(":0")
    assert {c.name for c in info.capabilities} == {
        "echo",
        "wait_for",
        "blocking_wait",
        "explode",
        "cooperative",
        "sleepy",
    }


async def test_stop_drains_running_tasks_and_refuses_new_ones(start_worker: Callable[..., Any], gates: Gates) -> None:
    worker = await start_worker()
    async with aio.insecure_channel(worker.address) as channel:
        stub = pb_grpc.WorkerServiceStub(channel)
        running = task("wait_for", name="drain")
        await stub.ExecuteTask(running)
        stream = stub.StreamTaskStatus(pb.GetTaskStatusRequest(task_id=running.task.task_id))
        stopping = asyncio.create_task(worker.stop(grace_seconds=5))
        async with asyncio.timeout(5):
            while True:  # stop() flips to draining on its first step
                refused = await stub.ExecuteTask(task("echo", text="late"))
                if not refused.accepted:
                    break
        assert "shutting down" in refused.message
        gates.open("drain")
        async with asyncio.timeout(5):
            results = [r.result async for r in stream]
            await stopping
    assert results[-1].status == pb.TASK_STATUS_COMPLETED


async def test_tasks_still_running_after_the_grace_period_are_canceled(start_worker: Callable[..., Any]) -> None:
    worker = await start_worker()
    async with aio.insecure_channel(worker.address) as channel:
        stub = pb_grpc.WorkerServiceStub(channel)
        running = task("wait_for", name="never")
        await stub.ExecuteTask(running)
        stream = stub.StreamTaskStatus(pb.GetTaskStatusRequest(task_id=running.task.task_id))
        async with asyncio.timeout(5):
            await worker.stop(grace_seconds=0.2)
            results = [r.result async for r in stream]
    assert results[-1].status == pb.TASK_STATUS_CANCELED
