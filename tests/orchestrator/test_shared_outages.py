"""A daemon on NATS while NATS does not answer: callers hear UNAVAILABLE (and retry), never INTERNAL."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc import aio

from tests.nats_server import NatsServer
from worker_abstraction import OrchestratorUnavailableError, RegistryServer, RemoteOrchestrator
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.orchestrator.server import OrchestratorServer
from worker_abstraction.orchestrator.shared import SharedTasks
from worker_abstraction.stores.jetstream import (
    NatsOptions,
    TaskDocsOptions,
    UpdateLogOptions,
    WorkQueueOptions,
)

pytestmark = pytest.mark.timeout(60)
ANSWER_SECONDS = 0.5  # how long the daemon waits for NATS before it says NATS does not answer
Daemon = Callable[..., Awaitable[OrchestratorServer]]
ECHO = pb.Task(capability_name="echo", parameters=[pb.TaskParameter(key="text", value_json='"hi"')])


@pytest.fixture
async def daemon(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Daemon]:
    started: list[OrchestratorServer] = []

    async def start(**options: Any) -> OrchestratorServer:
        shared = await SharedTasks.open(
            NatsOptions((nats_server.url,)),
            replica=f"r{len(started)}",
            documents=TaskDocsOptions(answer_timeout_seconds=ANSWER_SECONDS),
            work=WorkQueueOptions(answer_timeout_seconds=ANSWER_SECONDS),
            updates=UpdateLogOptions(answer_timeout_seconds=ANSWER_SECONDS),
        )
        server = OrchestratorServer(registry.address, port=0, shared=shared, **options)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(None)


@contextlib.contextmanager
def paused(server: NatsServer) -> Iterator[None]:
    """NATS stops answering (SIGSTOP): its connections stay open, its answers never come, until SIGCONT."""
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


async def test_submissions_reads_and_cancels_while_nats_does_not_answer_are_refused_unavailable(
    daemon: Daemon, start_worker: Callable[..., Any], nats_server: NatsServer
) -> None:
    await start_worker()
    server = await daemon()
    remote = RemoteOrchestrator(server.address)
    channel = aio.insecure_channel(server.address)
    stub = pb_grpc.OrchestratorServiceStub(channel)
    try:
        await remote.wait_for_workers("echo", timeout_seconds=5)
        with paused(nats_server):
            # Through a session (its ack), as RemoteOrchestrator submits: the error its callers retry.
            with pytest.raises(OrchestratorUnavailableError):
                await remote.execute_task("echo", {"text": "hi"}, idempotency_key="outage-1")
            calls = {
                "SubmitTask": stub.SubmitTask(pb.SubmitTaskRequest(task=ECHO)),
                "GetTask": stub.GetTask(pb.GetTaskRequest(task_id="some-task")),
                "CancelTask": stub.CancelTask(pb.CancelTaskRequest(task_id="some-task")),
                "ListDeadLetters": stub.ListDeadLetters(empty_pb2.Empty()),
            }
            codes = {}
            for name, call in calls.items():
                with pytest.raises(aio.AioRpcError) as refused:
                    await call
                codes[name] = refused.value.code()
            assert codes == dict.fromkeys(calls, grpc.StatusCode.UNAVAILABLE)
        # NATS answers again: the same submission (its key) is accepted, once, and runs.
        handle = await remote.execute_task("echo", {"text": "hi"}, idempotency_key="outage-1")
        assert await handle.result(timeout_seconds=15) == {"text": "hi"}
    finally:
        await channel.close(None)
        await remote.aclose()
