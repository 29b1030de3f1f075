"""Every FAILED or CANCELED update a worker sends says why, for programs (TaskResult.failure)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from grpc import aio

from tests.worker.conftest import EdgeCaseWorker, execute, failure_of, log_of, make_task
from worker_abstraction import lifecycle
from worker_abstraction._convert import failure_from_pb
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.types import MAX_TRACEBACK, FailureOrigin, TaskFailure


async def test_handler_error_is_a_retryable_handler_failure_named_by_its_type(
    edge_stub: pb_grpc.WorkerServiceStub,
) -> None:
    task = make_task("raise_some_error", message="x")
    assert (await execute(edge_stub, task)).accepted
    final = (await log_of(edge_stub, task.task_id))[-1]
    assert final.status == pb.TASK_STATUS_FAILED
    failure = failure_of(final)
    assert failure is not None
    assert replace(failure, traceback="") == TaskFailure("SomeError", "x", FailureOrigin.HANDLER, retryable=True)
    assert final.error_message == "SomeError: x"
    # The handler's traceback travels with it: from the handler's frame to the error, none of the worker's own.
    assert failure.traceback.startswith("Traceback (most recent call last):")
    assert "in raise_some_error" in failure.traceback and "raise SomeError(message)" in failure.traceback
    assert failure.traceback.rstrip().endswith("SomeError: x") and "runner.py" not in failure.traceback


async def test_overrunning_the_timeout_is_a_retryable_timeout_failure(edge_stub: pb_grpc.WorkerServiceStub) -> None:
    task = make_task("sleepy", timeout_seconds=1, seconds=30)
    assert (await execute(edge_stub, task)).accepted
    final = (await log_of(edge_stub, task.task_id))[-1]
    assert final.status == pb.TASK_STATUS_FAILED
    failure = failure_of(final)
    assert (failure.type, failure.origin, failure.retryable) == (
        lifecycle.DEADLINE_EXCEEDED,
        FailureOrigin.TIMEOUT,
        True,
    )
    # It names the limit, and says how to raise it.
    assert "timeout of 1s" in failure.message and "--timeout" in failure.message
    assert final.error_message == failure.text


async def test_a_timeout_error_the_handler_raises_itself_is_its_error_not_the_deadline(
    edge_stub: pb_grpc.WorkerServiceStub,
) -> None:
    task = make_task("raise_timeout_error", timeout_seconds=60, message="upstream took too long")
    assert (await execute(edge_stub, task)).accepted
    final = (await log_of(edge_stub, task.task_id))[-1]
    failure = failure_of(final)
    assert failure is not None and "raise TimeoutError(message)" in failure.traceback
    assert replace(failure, traceback="") == TaskFailure(
        "TimeoutError", "upstream took too long", FailureOrigin.HANDLER, True
    )


async def test_output_json_cannot_carry_is_a_handler_failure_not_worth_retrying(
    edge_stub: pb_grpc.WorkerServiceStub,
) -> None:
    task = make_task("unserializable")
    assert (await execute(edge_stub, task)).accepted
    final = (await log_of(edge_stub, task.task_id))[-1]
    failure = failure_of(final)
    assert final.status == pb.TASK_STATUS_FAILED and failure is not None
    assert (failure.type, failure.origin, failure.retryable) == ("TypeError", FailureOrigin.HANDLER, False)
    assert final.error_message == failure.text


async def test_a_canceled_task_says_who_canceled_it_and_why(edge_stub: pb_grpc.WorkerServiceStub) -> None:
    task = make_task("cooperative")
    assert (await execute(edge_stub, task)).accepted
    await edge_stub.CancelTask(pb.CancelTaskRequest(task_id=task.task_id, reason="user changed their mind"))
    final = (await log_of(edge_stub, task.task_id))[-1]
    assert final.status == pb.TASK_STATUS_CANCELED
    assert failure_of(final) == TaskFailure(
        lifecycle.CANCELED, "user changed their mind", FailureOrigin.CANCELED, retryable=False
    )
    # The contract records CancelTaskRequest.reason as the CANCELED update's error_message, as seed readers expect.
    assert final.error_message == "user changed their mind"


async def test_a_task_cut_short_by_the_worker_stopping_is_a_retryable_infrastructure_failure() -> None:
    worker = EdgeCaseWorker(None, port=0)
    await worker.start()
    try:
        async with aio.insecure_channel(worker.address) as channel:
            stub = pb_grpc.WorkerServiceStub(channel)
            task = make_task("wait_for", name="never")
            assert (await execute(stub, task)).accepted
            stream = stub.StreamTaskStatus(pb.GetTaskStatusRequest(task_id=task.task_id, from_start=True))
            async with asyncio.timeout(5):
                assert (await stream.read()).result.status == pb.TASK_STATUS_PENDING
                await worker.stop(grace_seconds=0.2)
                while (message := await stream.read()) is not aio.EOF:
                    final = message.result
    finally:
        await worker.stop(grace_seconds=0.2)
    # Still CANCELED on the wire (what seed orchestrators know), but nobody asked for it: retry it elsewhere.
    assert final.status == pb.TASK_STATUS_CANCELED
    assert failure_of(final) == TaskFailure(
        lifecycle.WORKER_STOPPED, "worker stopped before the task finished", FailureOrigin.INFRASTRUCTURE, True
    )
    assert final.error_message == "worker stopped before the task finished"


async def test_a_long_traceback_keeps_its_end_within_the_bound(edge_stub: pb_grpc.WorkerServiceStub) -> None:
    task = make_task("raise_some_error", message="m" * 20_000)
    assert (await execute(edge_stub, task)).accepted
    failure = failure_of((await log_of(edge_stub, task.task_id))[-1])
    assert failure is not None and len(failure.message) == 20_000  # the message, whole
    # In the traceback each line is cut (so the frames stay), and the whole within the bound.
    assert len(failure.traceback) < MAX_TRACEBACK and "raise SomeError(message)" in failure.traceback
    assert failure.traceback.rstrip().endswith("more characters)") and "m… (" in failure.traceback


def test_a_traceback_a_worker_sends_is_cut_to_the_bound_where_it_is_read() -> None:
    read = failure_from_pb(pb.TaskFailure(type="X", traceback="t" * 100_000 + "the end"))
    assert len(read.traceback) <= MAX_TRACEBACK and read.traceback.endswith("t" * 1000 + "the end")
    assert read.traceback.startswith("… (") and "t" * 8000 in read.traceback
    assert failure_from_pb(pb.TaskFailure(type="X")).traceback == ""
