"""A daemon on NATS while NATS does not answer: callers hear UNAVAILABLE (and retry), never INTERNAL; its
background loops outlive the outage; its health check and metrics say so meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.errors import OutboundBufferLimitError

from tests.conftest import eventually
from tests.faulty_nats import FaultyConnection
from tests.nats_server import NatsServer
from worker_abstraction import OrchestratorUnavailableError, RegistryServer, RemoteOrchestrator, TaskFailedError
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.observability.metrics import OrchestratorMetrics
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.orchestrator.homes.nats.home import NatsHome
from worker_abstraction.stores.jetstream import (
    NatsOptions,
    TaskDocs,
    TaskDocsOptions,
    UpdateLog,
    UpdateLogOptions,
    WorkQueue,
    WorkQueueOptions,
    connect,
)

pytestmark = pytest.mark.timeout(60)
ANSWER_SECONDS = 0.5  # how long the daemon waits for NATS before it says NATS does not answer
Daemon = Callable[..., Awaitable[OrchestratorServer]]
ECHO = pb.Task(capability_name="echo", parameters=[pb.TaskParameter(key="text", value_json='"hi"')])


@pytest.fixture
async def daemon(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Daemon]:
    """Start a daemon on the shared NATS; with `connection`, its stores use that one (a FaultyConnection)."""
    started: list[OrchestratorServer] = []
    connections: list[FaultyConnection] = []

    async def start(
        *, connection: FaultyConnection | None = None, max_deliveries: int = 10, **options: Any
    ) -> OrchestratorServer:
        work = WorkQueueOptions(answer_timeout_seconds=ANSWER_SECONDS, max_deliveries=max_deliveries)
        documents = TaskDocsOptions(answer_timeout_seconds=ANSWER_SECONDS)
        updates = UpdateLogOptions(answer_timeout_seconds=ANSWER_SECONDS)
        replica = f"r{len(started)}"
        if connection is None:
            url = (nats_server.url,)
            shared = await NatsHome.open(
                NatsOptions(url), replica=replica, documents=documents, work=work, updates=updates
            )
        else:
            connections.append(connection)
            docs = await TaskDocs.open(connection, documents)
            queue = await WorkQueue.open(connection, work)
            log = await UpdateLog.open(connection, updates)
            shared = NatsHome(connection, docs, queue, log, replica=replica)
        server = OrchestratorServer(registry.address, port=0, home=shared, **options)
        await server.start()
        started.append(server)
        return server

    yield start
    for connection in connections:
        connection.down = False
    for server in started:
        await server.stop(None)
    for connection in connections:
        await connection.close()


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


EXHAUSTED_FETCH = "$JS.API.CONSUMER.MSG.NEXT.WA_WORK_EXHAUSTED."


@pytest.mark.parametrize("error", [OutboundBufferLimitError, RuntimeError], ids=["nats-error", "unforeseen-error"])
async def test_work_exhausted_after_nats_failed_the_loop_that_moves_it_still_ends_failed_as_a_dead_letter(
    daemon: Daemon, nats_server: NatsServer, error: type[Exception]
) -> None:
    connection = await FaultyConnection.open(nats_server.url)
    connection.publish_error = error
    server = await daemon(connection=connection, max_deliveries=2, queue_without_workers=True)
    orchestrator = server.orchestrator
    handle = await orchestrator.execute_task("nobody_offers_it", {})  # waits in the shared queue
    # A node dies: the loop that moves exhausted work finds NATS gone (what killed it for good before).
    fetch_refused = connection.refusal(EXHAUSTED_FETCH)
    connection.down = True
    async with asyncio.timeout(15):
        await fetch_refused.wait()
    connection.down = False

    # Another replica takes the work twice and dies with it each time: the server advises it is exhausted.
    other = await connect(NatsOptions((nats_server.url,)))
    try:
        queue = await WorkQueue.open(other, WorkQueueOptions(max_deliveries=2))
        for _ in range(2):
            (lease,) = await queue.take("nobody_offers_it", 1, wait_seconds=5)
            await lease.give_back()
        assert await queue.take("nobody_offers_it", 1, wait_seconds=0.5) == []
        await queue.close()
    finally:
        await other.close()

    with pytest.raises(TaskFailedError):
        await handle.result(timeout_seconds=20)
    await eventually(lambda: _letters(orchestrator, handle.task_id), what="it became a dead letter")


async def _letters(orchestrator: Any, task_id: str) -> bool:
    return task_id in {letter.task_id for letter in await orchestrator.dead_letters()}


async def test_while_nats_does_not_answer_the_daemon_is_not_serving_counts_it_and_logs_it_once(
    daemon: Daemon, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    connection = await FaultyConnection.open(nats_server.url)
    metrics = OrchestratorMetrics()
    server = await daemon(connection=connection, metrics=metrics)
    channel = aio.insecure_channel(server.address)
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING

    def sample(name: str) -> float | None:
        return metrics.registry.get_sample_value(name)

    try:
        statuses = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        async with asyncio.timeout(20):
            assert (await statuses.read()).status == serving
            caplog.set_level(logging.INFO, logger="worker_abstraction.stores.availability")
            connection.down = True
            assert (await statuses.read()).status == not_serving
            assert sample("wa_store_available") == 0
            # (no event says "tried again": the count is read until the probe has failed three times)
            await eventually(lambda: (sample("wa_store_errors_total") or 0) >= 3, timeout_seconds=10, what="retries")
            connection.down = False
            assert (await statuses.read()).status == serving
        assert sample("wa_store_available") == 1
        said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.endswith("stores.availability")]
        assert [level for level, _ in said] == [logging.WARNING, logging.INFO], said  # once down, once back
    finally:
        await channel.close(None)
