"""Helpers for the worker's own tests: a worker with the odd handlers they need, and wire-level shortcuts."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from grpc import aio

from tests.conftest import ToolWorker
from worker_abstraction import TaskContext, capability
from worker_abstraction._convert import failure_from_pb
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.types import TaskFailure


class SomeError(Exception):
    """A handler's own error type."""


class EdgeCaseWorker(ToolWorker):
    """ToolWorker plus handlers that fail, misbehave or look at their context."""

    @capability
    def raise_some_error(self, message: str) -> None:
        """Always raises SomeError(message)."""
        raise SomeError(message)

    @capability
    async def raise_timeout_error(self, message: str) -> None:
        """Raises its own TimeoutError (say, a client library's), with no task timeout involved."""
        raise TimeoutError(message)

    @capability
    async def unserializable(self) -> object:
        """Returns something JSON cannot carry."""
        return object()

    @capability
    async def returns_when_canceled(self, ctx: TaskContext) -> str:
        """Notices the cancel request, then returns normally instead of raising."""
        await ctx.wait_cancel_requested()
        return "finished anyway"

    @capability
    def thread_returns_when_canceled(self, ctx: TaskContext) -> str:
        """A plain handler that checks the request now and then (as documented), then returns normally."""
        give_up = time.monotonic() + 10
        while not ctx.cancel_requested and time.monotonic() < give_up:
            time.sleep(0.005)
        return "finished anyway"

    @capability
    async def describe_context(self, ctx: TaskContext) -> dict[str, Any]:
        """Returns what the context says about the task."""
        return {
            "attempt": ctx.attempt,
            "deadline": ctx.deadline.timestamp() if ctx.deadline is not None else None,
        }


@pytest.fixture
async def edge_worker() -> AsyncIterator[EdgeCaseWorker]:
    # A long grace: a handler asked to cancel is never stopped by force before it returns on its own.
    worker = EdgeCaseWorker(None, port=0, cancel_grace_seconds=30)
    await worker.start()
    yield worker
    await worker.stop(grace_seconds=0.5)


@pytest.fixture
async def edge_stub(edge_worker: EdgeCaseWorker) -> AsyncIterator[pb_grpc.WorkerServiceStub]:
    async with aio.insecure_channel(edge_worker.address) as channel:
        yield pb_grpc.WorkerServiceStub(channel)


def make_task(
    capability_name: str, *, task_id: str = "", attempt: int = 0, timeout_seconds: int = 0, **params: Any
) -> pb.Task:
    return pb.Task(
        task_id=task_id or uuid.uuid4().hex,
        capability_name=capability_name,
        timeout_seconds=timeout_seconds,
        attempt=attempt,
        parameters=[pb.TaskParameter(key=k, value_json=json.dumps(v)) for k, v in params.items()],
    )


async def execute(stub: pb_grpc.WorkerServiceStub, task: pb.Task) -> pb.ExecuteTaskResponse:
    async with asyncio.timeout(5):
        response: pb.ExecuteTaskResponse = await stub.ExecuteTask(pb.ExecuteTaskRequest(task=task))
        return response


async def log_of(stub: pb_grpc.WorkerServiceStub, task_id: str) -> list[pb.TaskResult]:
    """Every update of the task from PENDING on, once it finished."""
    async with asyncio.timeout(5):
        call = stub.StreamTaskStatus(pb.GetTaskStatusRequest(task_id=task_id, from_start=True))
        return [message.result async for message in call]


def failure_of(update: pb.TaskResult) -> TaskFailure | None:
    return failure_from_pb(update.failure) if update.HasField("failure") else None
