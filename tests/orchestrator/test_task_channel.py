"""The fast path: many tasks over one stream, batched, and resumed over the seed's RPCs if it breaks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from grpc import aio

from tests.conftest import Gates, eventually
from worker_abstraction import (
    AsyncOrchestrator,
    BaseWorker,
    CapabilitySpec,
    RegistryClient,
    RegistryServer,
    TaskRejectedError,
    TaskStatus,
    WorkerInfo,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.orchestrator.edge.link import WorkerLinks


async def test_orchestrator_sends_tasks_over_the_channel(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    worker = await start_worker()
    links = WorkerLinks()
    async with AsyncOrchestrator(registry.address, links=links) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        handles = await asyncio.gather(*(orchestrator.execute_task("echo", {"text": str(i)}) for i in range(50)))
        assert [await h.result(timeout_seconds=5) for h in handles] == [{"text": str(i)} for i in range(50)]
        channel = links.get(worker.address).task_channel
        assert channel is not None and channel.is_open
        assert [u.status for u in handles[0].updates] == [
            TaskStatus.PENDING,
            TaskStatus.RUNNING,
            TaskStatus.RUNNING,
            TaskStatus.COMPLETED,
        ]


async def test_refusal_by_the_worker_surfaces_as_task_rejected(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    worker = await start_worker()
    # A registration that claims a capability the process behind the address does not serve.
    impostor = WorkerInfo(
        worker_id="impostor",
        name="impostor",
        address=worker.address.replace("127.0.0.1", "localhost"),
        capabilities=(CapabilitySpec(name="ghost"),),
    )
    client = RegistryClient(registry.address)
    await client.register(impostor)
    try:
        async with AsyncOrchestrator(registry.address) as orchestrator:
            await orchestrator.wait_for_workers("ghost", timeout_seconds=5)
            handle = await orchestrator.execute_task("ghost", {})
            with pytest.raises(TaskRejectedError) as rejected:
                await handle.result(timeout_seconds=5)
            assert "unknown capability 'ghost'" in rejected.value.reason
    finally:
        await client.aclose()


async def test_broken_channel_resumes_running_tasks_over_stream_task_status(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    worker = await start_worker()
    links = WorkerLinks()
    async with AsyncOrchestrator(registry.address, links=links) as orchestrator:
        await orchestrator.wait_for_workers("wait_for", timeout_seconds=5)
        handle = await orchestrator.execute_task("wait_for", {"name": "resume"})
        await eventually(lambda: handle.status is TaskStatus.RUNNING, what="the task runs")
        channel = links.get(worker.address).task_channel
        assert channel is not None
        channel.abort()  # the stream breaks while the task runs; a StreamTaskStatus follower takes over
        await eventually(lambda: not channel.is_open, what="the channel is seen broken")
        gates.open("resume")
        assert await handle.result(timeout_seconds=5) == "resume"
        sequences = [u.sequence for u in handle.updates]
        assert sequences == sorted(set(sequences))  # no update lost or repeated across the switch
        assert handle.updates[-1].status is TaskStatus.COMPLETED
        # The next task opens a fresh channel.
        again = await orchestrator.execute_task("echo", {"text": "again"})
        assert await again.result(timeout_seconds=5) == {"text": "again"}


async def test_fast_path_can_be_switched_off(registry: RegistryServer, start_worker: Callable[..., Any]) -> None:
    worker = await start_worker()
    links = WorkerLinks(fast_path=False)
    async with AsyncOrchestrator(registry.address, links=links) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        handle = await orchestrator.execute_task("echo", {"text": "seed"})
        assert await handle.result(timeout_seconds=5) == {"text": "seed"}
        assert links.get(worker.address).task_channel is None


@pytest.fixture
async def channel_stub(start_worker: Callable[..., Any]) -> AsyncIterator[pb_grpc.WorkerServiceStub]:
    worker: BaseWorker = await start_worker()
    async with aio.insecure_channel(worker.address) as channel:
        yield pb_grpc.WorkerServiceStub(channel)


def _task(task_id: str, capability: str, **params: Any) -> pb.Task:
    return pb.Task(
        task_id=task_id,
        capability_name=capability,
        parameters=[pb.TaskParameter(key=k, value_json=json.dumps(v)) for k, v in params.items()],
    )


async def test_worker_channel_acks_every_task_and_streams_every_update(
    channel_stub: pb_grpc.WorkerServiceStub,
) -> None:
    call = channel_stub.OpenTaskChannel()
    async with asyncio.timeout(5):
        assert await call.read() == pb.TaskChannelResponse()  # ready
        await call.write(
            pb.TaskChannelRequest(
                tasks=[_task("a", "echo", text="x"), _task("b", "nope"), _task("a", "echo", text="x")]
            )
        )
        acks: dict[str, list[bool]] = {}
        updates: dict[str, list[int]] = {}
        while len(updates.get("a", [])) < 4:
            message = await call.read()
            for ack in message.acks:
                acks.setdefault(ack.task_id, []).append(ack.accepted)
            for update in message.updates:
                updates.setdefault(update.task_id, []).append(update.sequence)
        await call.done_writing()
        assert await call.read() is aio.EOF  # nothing open: the worker ends the stream
    assert acks == {"a": [True, True], "b": [False]}  # the duplicate is acked, not run twice
    assert updates == {"a": [1, 2, 3, 4]}


async def test_a_task_sent_again_on_a_new_channel_streams_its_updates_there(
    channel_stub: pb_grpc.WorkerServiceStub, gates: Gates
) -> None:
    # An orchestrator that sent a task and died before noting it sends it again after its restart.
    first, second = channel_stub.OpenTaskChannel(), channel_stub.OpenTaskChannel()
    task = _task("t", "wait_for", name="resend")
    task.attempt = 1
    async with asyncio.timeout(5):
        assert await first.read() == pb.TaskChannelResponse()
        await first.write(pb.TaskChannelRequest(tasks=[task]))
        while not (await first.read()).acks:
            pass
        first.cancel()  # the first sender is gone

        assert await second.read() == pb.TaskChannelResponse()
        await second.write(pb.TaskChannelRequest(tasks=[task]))
        gates.open("resend")
        statuses: list[int] = []
        acks: list[str] = []
        while pb.TASK_STATUS_COMPLETED not in statuses:
            message = await second.read()
            acks += [a.message for a in message.acks]
            statuses += [u.status for u in message.updates]
        await second.done_writing()
    assert acks == ["already accepted"]  # not run twice...
    assert statuses[0] == pb.TASK_STATUS_PENDING and statuses[-1] == pb.TASK_STATUS_COMPLETED  # ...but heard
