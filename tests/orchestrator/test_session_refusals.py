"""A session refuses one bad message in that message's own answer, at once, and goes on serving the rest.

The caller here keeps its request stream open (it never half-closes), as a real caller does: every message it
sends gets an answer within a second, or the call ends with a status; it never waits on silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.conftest import Gates
from worker_abstraction import OrchestratorServer, RegistryServer
from worker_abstraction._proto import worker_pb2 as pb

pytestmark = pytest.mark.timeout(30)

PROMPT_SECONDS = 1.0  # an answer to a message comes within this


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[OrchestratorServer]:
    await start_worker()
    async with OrchestratorServer(registry.address, port=0) as server:
        await server.orchestrator.wait_for_workers("echo", timeout_seconds=5)
        yield server


class Session:
    """A raw OpenSession call: messages (or bytes) out, each answer read within PROMPT_SECONDS."""

    def __init__(self, channel: aio.Channel) -> None:
        self.call = channel.stream_stream(
            "/worker_abstraction.OrchestratorService/OpenSession",
            request_serializer=lambda message: message if isinstance(message, bytes) else message.SerializeToString(),
            response_deserializer=pb.SessionResponse.FromString,
        )()

    async def open(self) -> None:
        async with asyncio.timeout(PROMPT_SECONDS):
            ready = await self.call.read()
        assert isinstance(ready, pb.SessionResponse)

    async def answer(self, request: pb.SessionRequest | bytes) -> pb.SessionResponse:
        await self.call.write(request)
        async with asyncio.timeout(PROMPT_SECONDS):
            message = await self.call.read()
        assert isinstance(message, pb.SessionResponse), "the session ended"
        return message

    async def until(self, found: Callable[[pb.SessionResponse], bool]) -> pb.SessionResponse:
        async with asyncio.timeout(5):
            while True:
                message = await self.call.read()
                assert isinstance(message, pb.SessionResponse), "the session ended"
                if found(message):
                    return message


def _submit(request_id: int, capability: str = "echo", **params: str) -> pb.SessionSubmit:
    submit = pb.SessionSubmit(request_id=request_id)
    submit.submit.task.capability_name = capability
    for key, value in params.items():
        submit.submit.task.parameters.add(key=key, value_json=f'"{value}"')
    return submit


def _finished(task_id: str) -> Callable[[pb.SessionResponse], bool]:
    return lambda message: any(u.task_id == task_id and u.status == pb.TASK_STATUS_COMPLETED for u in message.updates)


async def test_a_watch_past_int64_is_refused_in_its_ack_and_the_session_goes_on(daemon: OrchestratorServer) -> None:
    async with aio.insecure_channel(daemon.address) as channel:
        session = Session(channel)
        await session.open()
        first = await session.answer(pb.SessionRequest(submits=[_submit(1, text="one")]))
        task_id = first.acks[0].response.task_id
        await session.until(_finished(task_id))  # (finished: a watch past its end must still say how it ended)
        refused = await session.answer(
            pb.SessionRequest(watches=[pb.WatchTaskRequest(task_id=task_id, after_sequence=2**63 - 1)])
        )
        assert [(a.task_id, a.error.code) for a in refused.acks] == [
            (task_id, grpc.StatusCode.INVALID_ARGUMENT.value[0])
        ]
        assert "after_sequence" in refused.acks[0].error.details
        # The same stream still takes submissions and reports their ends.
        again = await session.answer(pb.SessionRequest(submits=[_submit(2, text="two")]))
        assert again.acks[0].request_id == 2 and again.acks[0].HasField("response")
        await session.until(_finished(again.acks[0].response.task_id))
        session.call.cancel()


async def test_a_submission_out_of_range_is_refused_in_its_own_ack(daemon: OrchestratorServer) -> None:
    async with aio.insecure_channel(daemon.address) as channel:
        session = Session(channel)
        await session.open()
        bad = _submit(5, text="x")
        bad.submit.task.created_at.nanos = -1
        bad.submit.queue_timeout_seconds = float("nan")
        good = _submit(6, text="fine")
        message = await session.answer(pb.SessionRequest(submits=[bad, good]))
        acks = {a.request_id: a for a in message.acks}
        if 6 not in acks:
            acks.update({a.request_id: a for a in (await session.until(lambda m: bool(m.acks))).acks})
        assert acks[5].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "created_at" in acks[5].error.details and "queue_timeout_seconds" in acks[5].error.details
        assert acks[6].HasField("response")
        session.call.cancel()


async def test_a_message_the_daemon_cannot_use_is_answered_at_once(daemon: OrchestratorServer) -> None:
    async with aio.insecure_channel(daemon.address) as channel:
        session = Session(channel)
        await session.open()
        empty = await session.answer(pb.SessionRequest())
        assert [a.error.code for a in empty.acks] == [grpc.StatusCode.INVALID_ARGUMENT.value[0]]
        newer_fields_only = await session.answer(b"\xb8\x3e\x01")  # (field 999: from a newer contract)
        assert [a.error.code for a in newer_fields_only.acks] == [grpc.StatusCode.INVALID_ARGUMENT.value[0]]
        unknown = await session.answer(pb.SessionRequest(unwatch=["no-such-task"]))
        assert [(a.task_id, a.error.code) for a in unknown.acks] == [
            ("no-such-task", grpc.StatusCode.NOT_FOUND.value[0])
        ]
        session.call.cancel()


async def test_bytes_that_are_not_a_message_end_the_session_at_once_even_while_it_follows_a_task(
    daemon: OrchestratorServer, gates: Gates
) -> None:
    async with aio.insecure_channel(daemon.address) as channel:
        session = Session(channel)
        await session.open()
        accepted = await session.answer(pb.SessionRequest(submits=[_submit(1, "wait_for", name="held")]))
        assert accepted.acks[0].HasField("response")  # (its task runs until the gate opens: the session follows it)
        await session.call.write(b"\x0a\xff\xff\xff\xff\x07")  # (a length prefix of 2 GiB: not a SessionRequest)
        with pytest.raises(aio.AioRpcError) as ended:
            async with asyncio.timeout(PROMPT_SECONDS):
                while isinstance(await session.call.read(), pb.SessionResponse):
                    pass
        assert ended.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        gates.open("held")
