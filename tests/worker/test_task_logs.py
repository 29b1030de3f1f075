"""The lines a worker logs about each task, as Celery's do: received, then how it ended, each with `task_id`."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from grpc import aio

from tests.conftest import Gates, ToolWorker
from tests.worker.conftest import SomeError, execute, log_of, make_task
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.worker import failures, tasklog
from worker_abstraction.worker.tasks import TaskRecord

DURATION = re.compile(r" in \d+\.\d\d (ms|s)\b")
AFTER = re.compile(r" after \d+\.\d\d (ms|s)\b")


def records_of(caplog: pytest.LogCaptureFixture, task_id: str) -> list[logging.LogRecord]:
    """The task's records; every record that names the task must carry its id for a JSON formatter to index."""
    carrying = [r for r in caplog.records if getattr(r, "task_id", None) == task_id]
    naming = [r for r in caplog.records if task_id in r.getMessage()]
    assert naming == carrying
    return carrying


def levels(records: list[logging.LogRecord]) -> list[int]:
    return [r.levelno for r in records]


async def test_a_task_that_succeeds_logs_received_then_succeeded_with_its_duration_at_info(
    edge_stub: pb_grpc.WorkerServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    task = make_task("echo", attempt=3, text="the-secret-parameter", times=2)
    assert (await execute(edge_stub, task)).accepted
    assert (await log_of(edge_stub, task.task_id))[-1].status == pb.TASK_STATUS_COMPLETED
    records = records_of(caplog, task.task_id)
    assert levels(records) == [logging.INFO, logging.INFO]
    received, succeeded = records
    for record in records:
        assert record.__dict__["capability"] == "echo" and "echo" in record.getMessage()
        assert record.exc_info is None
        assert record.args  # lazy %-args: the message is only formatted by a handler that emits it
    assert "received" in received.getMessage() and "attempt 3" in received.getMessage()
    assert "succeeded" in succeeded.getMessage() and DURATION.search(succeeded.getMessage())
    assert "the-secret-parameter" not in caplog.text  # neither the arguments nor the output


async def test_a_handler_that_raises_logs_the_failure_at_error_with_its_full_traceback(
    edge_stub: pb_grpc.WorkerServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    task = make_task("raise_some_error", message="no such customer")
    assert (await execute(edge_stub, task)).accepted
    assert (await log_of(edge_stub, task.task_id))[-1].status == pb.TASK_STATUS_FAILED
    records = records_of(caplog, task.task_id)
    assert levels(records) == [logging.INFO, logging.ERROR]
    failed = records[1]
    assert failed.__dict__["capability"] == "raise_some_error"
    assert "failed" in failed.getMessage() and "SomeError: no such customer" in failed.getMessage()
    assert AFTER.search(failed.getMessage())
    assert failed.exc_info is not None and failed.exc_info[0] is SomeError
    # Down to the handler's own frame, not just the worker's.
    assert "raise SomeError(message)" in logging.Formatter().formatException(failed.exc_info)


@pytest.mark.parametrize(
    ("capability", "params", "failure_type"),
    [
        ("sleepy", {"timeout_seconds": 1, "seconds": 30}, "DeadlineExceeded"),
        ("unserializable", {}, "TypeError"),
    ],
)
async def test_a_failure_the_handler_did_not_raise_is_one_error_line_without_a_traceback(
    edge_stub: pb_grpc.WorkerServiceStub,
    caplog: pytest.LogCaptureFixture,
    capability: str,
    params: dict[str, int],
    failure_type: str,
) -> None:
    caplog.set_level(logging.INFO)
    task = make_task(capability, **params)
    assert (await execute(edge_stub, task)).accepted
    assert (await log_of(edge_stub, task.task_id))[-1].status == pb.TASK_STATUS_FAILED
    records = records_of(caplog, task.task_id)
    assert levels(records) == [logging.INFO, logging.ERROR]
    assert f"{failure_type}: " in records[1].getMessage() and records[1].exc_info is None


async def test_a_canceled_task_logs_one_info_line_with_the_reason_and_no_traceback(
    edge_stub: pb_grpc.WorkerServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    task = make_task("cooperative")  # raises once it sees the request: still a cancel, not a failure
    assert (await execute(edge_stub, task)).accepted
    stream = edge_stub.StreamTaskStatus(pb.GetTaskStatusRequest(task_id=task.task_id, from_start=True))
    async with asyncio.timeout(5):
        while (await stream.read()).result.status != pb.TASK_STATUS_RUNNING:
            pass
        await edge_stub.CancelTask(pb.CancelTaskRequest(task_id=task.task_id, reason="user changed their mind"))
        while (await stream.read()).result.status != pb.TASK_STATUS_CANCELED:
            pass
    records = records_of(caplog, task.task_id)
    assert levels(records) == [logging.INFO, logging.INFO]
    canceled = records[1]
    assert "canceled" in canceled.getMessage() and "user changed their mind" in canceled.getMessage()
    assert canceled.__dict__["capability"] == "cooperative" and canceled.exc_info is None


async def test_a_task_cut_short_by_the_worker_stopping_logs_a_warning(
    gates: Gates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    worker = ToolWorker(None, port=0)
    await worker.start()
    task = make_task("wait_for", name="never-opened")
    async with aio.insecure_channel(worker.address) as channel:
        assert (await execute(pb_grpc.WorkerServiceStub(channel), task)).accepted
    await worker.stop(grace_seconds=0.1)  # the handler is still waiting: the worker cancels it
    records = records_of(caplog, task.task_id)
    assert levels(records) == [logging.INFO, logging.WARNING]
    assert "canceled" in records[1].getMessage() and records[1].exc_info is None


async def test_nothing_is_logged_for_a_task_when_info_is_off(
    edge_stub: pb_grpc.WorkerServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    task = make_task("echo", text="x")
    assert (await execute(edge_stub, task)).accepted
    assert (await log_of(edge_stub, task.task_id))[-1].status == pb.TASK_STATUS_COMPLETED
    assert records_of(caplog, task.task_id) == []


def test_a_task_canceled_before_it_started_says_so(caplog: pytest.LogCaptureFixture) -> None:
    # Reached when a runner is canceled before its first step, which a test cannot time over the wire.
    caplog.set_level(logging.INFO)
    record = TaskRecord("t-1", "echo", "w-1")
    tasklog.canceled(record, failures.canceled("no longer needed"), None)
    [line] = records_of(caplog, "t-1")
    assert line.getMessage() == "task echo[t-1] canceled before it started: no longer needed"
