"""A worker's task channel answers every message at once: a task out of range or a message with no task is
refused in an ack, and bytes that are not a message end the channel with INVALID_ARGUMENT, even while tasks run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.conftest import Gates
from worker_abstraction._proto import worker_pb2 as pb

pytestmark = pytest.mark.timeout(30)

PROMPT_SECONDS = 1.0


def _channel(channel: aio.Channel) -> Any:
    return channel.stream_stream(
        "/worker_abstraction.WorkerService/OpenTaskChannel",
        request_serializer=lambda message: message if isinstance(message, bytes) else message.SerializeToString(),
        response_deserializer=pb.TaskChannelResponse.FromString,
    )()


async def _acks(call: Any) -> list[pb.ExecuteTaskResponse]:
    async with asyncio.timeout(PROMPT_SECONDS):
        while True:
            message = await call.read()
            assert isinstance(message, pb.TaskChannelResponse), "the channel ended"
            if message.acks:
                return list(message.acks)


def _task(task_id: str, capability: str = "echo", **params: str) -> pb.Task:
    task = pb.Task(task_id=task_id, capability_name=capability, timeout_seconds=5)
    for key, value in params.items():
        task.parameters.add(key=key, value_json=f'"{value}"')
    return task


async def test_tasks_out_of_range_and_messages_without_tasks_are_refused_in_acks(
    start_worker: Callable[..., Any],
) -> None:
    worker = await start_worker()
    async with aio.insecure_channel(worker.address) as channel:
        call = _channel(channel)
        bad = _task("t-bad", text="x")
        bad.created_at.nanos = 10**9
        await call.write(pb.TaskChannelRequest(tasks=[bad]))
        [ack] = await _acks(call)
        assert (ack.task_id, ack.accepted, ack.reject_reason) == ("t-bad", False, pb.REJECT_REASON_INVALID_TASK)
        assert "created_at" in ack.message
        await call.write(pb.TaskChannelRequest())
        [empty] = await _acks(call)
        assert (empty.accepted, empty.reject_reason) == (False, pb.REJECT_REASON_INVALID_TASK)
        await call.write(pb.TaskChannelRequest(tasks=[_task("t-good", text="fine")]))
        [good] = await _acks(call)
        assert good.accepted
        call.cancel()


async def test_bytes_that_are_not_a_message_end_the_channel_at_once_while_a_task_runs(
    start_worker: Callable[..., Any], gates: Gates
) -> None:
    worker = await start_worker()
    async with aio.insecure_channel(worker.address) as channel:
        call = _channel(channel)
        await call.write(pb.TaskChannelRequest(tasks=[_task("t-held", "wait_for", name="held")]))
        [ack] = await _acks(call)
        assert ack.accepted
        await call.write(b"\x08\xff\xff\xff")  # (a truncated varint: not a TaskChannelRequest)
        with pytest.raises(aio.AioRpcError) as ended:
            async with asyncio.timeout(PROMPT_SECONDS):
                while isinstance(await call.read(), pb.TaskChannelResponse):
                    pass
        assert ended.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        gates.open("held")
