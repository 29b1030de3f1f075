"""What a worker refuses before running anything, and that whatever it takes reaches a terminal state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.worker.conftest import EdgeCaseWorker, execute, failure_of, log_of, make_task
from worker_abstraction import lifecycle
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.options import MAX_ID_LENGTH, MAX_TIMEOUT_SECONDS
from worker_abstraction.types import FailureOrigin, TaskFailure
from worker_abstraction.worker import runner
from worker_abstraction.worker.failures import WORKER_ERROR
from worker_abstraction.worker.servicer import WorkerServicer


@pytest.mark.parametrize("timeout_seconds", [86_400_000_000_000, 2**63 - 1, int(MAX_TIMEOUT_SECONDS) + 1, -1])
async def test_a_timeout_out_of_range_is_refused_as_invalid(
    edge_stub: pb_grpc.WorkerServiceStub, timeout_seconds: int
) -> None:
    # Past ~8.6e13 s the worker's own deadline arithmetic overflowed and the task stayed RUNNING for ever.
    response = await execute(edge_stub, make_task("echo", timeout_seconds=timeout_seconds, text="x"))
    assert not response.accepted and response.reject_reason == pb.REJECT_REASON_INVALID_TASK
    assert "timeout_seconds" in response.message


async def test_the_longest_timeout_allowed_is_accepted(edge_stub: pb_grpc.WorkerServiceStub) -> None:
    task = make_task("echo", timeout_seconds=int(MAX_TIMEOUT_SECONDS), text="x")
    assert (await execute(edge_stub, task)).accepted
    assert (await log_of(edge_stub, task.task_id))[-1].status == pb.TASK_STATUS_COMPLETED


async def test_every_bad_field_is_listed_in_one_refusal_quoting_only_a_prefix(
    edge_stub: pb_grpc.WorkerServiceStub,
) -> None:
    long_id = "x" * (MAX_ID_LENGTH + 50)
    task = pb.Task(task_id=long_id, capability_name="", timeout_seconds=-5, attempt=-1)
    response = await execute(edge_stub, task)
    assert not response.accepted and response.reject_reason == pb.REJECT_REASON_INVALID_TASK
    for field in ("task_id", "capability_name", "timeout_seconds", "attempt"):
        assert field in response.message
    assert "x" * 50 not in response.message


@pytest.mark.parametrize("task_id", ["line\nbreak", "bell\a"])
async def test_a_task_id_that_is_not_printable_is_refused(edge_stub: pb_grpc.WorkerServiceStub, task_id: str) -> None:
    response = await execute(edge_stub, make_task("echo", task_id=task_id, text="x"))
    assert not response.accepted and response.reject_reason == pb.REJECT_REASON_INVALID_TASK


async def test_on_the_task_channel_a_task_without_id_is_refused_as_invalid(
    edge_stub: pb_grpc.WorkerServiceStub,
) -> None:
    async def one_task() -> AsyncIterator[pb.TaskChannelRequest]:
        yield pb.TaskChannelRequest(tasks=[pb.Task(capability_name="echo")])

    async with asyncio.timeout(5):
        acks = [ack async for message in edge_stub.OpenTaskChannel(one_task()) for ack in message.acks]
    assert [(a.accepted, a.reject_reason) for a in acks] == [(False, pb.REJECT_REASON_INVALID_TASK)]


async def test_a_task_the_worker_cannot_set_up_fails_as_a_retryable_worker_error(
    edge_stub: pb_grpc.WorkerServiceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_context(**_: Any) -> None:
        raise RuntimeError("no context today")

    monkeypatch.setattr(runner, "TaskContext", broken_context)
    task = make_task("echo", text="x")  # echo takes a TaskContext
    assert (await execute(edge_stub, task)).accepted
    final = (await log_of(edge_stub, task.task_id))[-1]
    assert final.status == pb.TASK_STATUS_FAILED
    expected = TaskFailure(WORKER_ERROR, "RuntimeError: no context today", FailureOrigin.INFRASTRUCTURE, True)
    assert failure_of(final) == expected


async def test_a_task_canceled_before_it_started_ends_canceled(
    edge_worker: EdgeCaseWorker, edge_stub: pb_grpc.WorkerServiceStub
) -> None:
    servicer = edge_worker._servicer
    assert isinstance(servicer, WorkerServicer)
    response, record = servicer.accept(make_task("echo", task_id="early", text="x"))
    assert response.accepted and record is not None
    servicer.cancel(record, "changed my mind at once")  # same loop turn: its runner has not taken a step
    final = (await log_of(edge_stub, "early"))[-1]
    assert final.status == pb.TASK_STATUS_CANCELED
    assert failure_of(final) == TaskFailure(
        lifecycle.CANCELED, "changed my mind at once", FailureOrigin.CANCELED, False
    )
    assert edge_worker.load == 0
