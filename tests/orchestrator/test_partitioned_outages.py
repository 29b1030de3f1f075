"""PartitionedHome daemons while NATS does not answer (a real nats-server, real workers, callers through the
daemon's gRPC). Shorter than the lease (NATS stopped with SIGSTOP, past the writer's acknowledgement timeout):
submissions are refused UNAVAILABLE (never INTERNAL), the daemon's health says NOT_SERVING and then SERVING
again, and each task accepted before ends once after it. Longer than the lease (one daemon cut off from NATS
by a TCP proxy): its partitions lapse and its runs stop, the other daemon takes the tasks over, and once the
first is back its callers see each task end once, run once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import Gates, eventually
from tests.nats_server import NatsServer
from tests.orchestrator.test_shared_outages import paused
from tests.tcp_proxy import TcpProxy
from worker_abstraction import OrchestratorUnavailableError, RegistryServer, RemoteOrchestrator, TaskStatus, _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStoreOptions
from worker_abstraction.stores.jetstream import NatsOptions, UpdateLogOptions

pytestmark = pytest.mark.timeout(90)

PARTITIONS = 8
ANSWER_SECONDS = 0.5  # how long a daemon waits for NATS to acknowledge a write (or answer a read)
TASKS = 4
ECHO = pb.Task(capability_name="echo", parameters=[pb.TaskParameter(key="text", value_json='"raw"')])
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
Daemon = Callable[..., Awaitable[tuple[OrchestratorServer, PartitionedHome]]]


@pytest.fixture
async def daemon(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Daemon]:
    """Start an orchestrator daemon on a PartitionedHome (`url`: where it reaches NATS)."""
    started: list[OrchestratorServer] = []

    async def start(
        name: str, *, url: str = nats_server.url, lease_seconds: float
    ) -> tuple[OrchestratorServer, PartitionedHome]:
        store = PartitionedStoreOptions(
            answer_timeout_seconds=ANSWER_SECONDS, updates=UpdateLogOptions(answer_timeout_seconds=ANSWER_SECONDS)
        )
        home = await PartitionedHome.open(
            NatsOptions((url,)), replica=name, partitions=PARTITIONS, lease_seconds=lease_seconds, store=store
        )
        server = OrchestratorServer(registry.address, port=0, home=home)
        await server.start()
        started.append(server)
        return server, home

    yield start
    for server in started:
        await server.stop(None)


@pytest.fixture
async def proxy(nats_server: NatsServer) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", nats_server.port)
    await proxy.start()
    yield proxy
    await proxy.aclose()


async def test_an_outage_shorter_than_the_lease_is_refused_unavailable_and_every_task_from_before_ends_once(
    daemon: Daemon, start_worker: Callable[..., Any], gates: Gates, nats_server: NatsServer
) -> None:
    await start_worker(max_concurrent_tasks=8)
    server, home = await daemon("a", lease_seconds=10.0)
    remote = RemoteOrchestrator(server.address)
    channel = aio.insecure_channel(server.address)
    try:
        await remote.wait_for_workers("wait_for", timeout_seconds=5)
        gate = "partitioned-short-outage"
        before = [
            await remote.execute_task("wait_for", {"name": gate}, idempotency_key=f"before-{n}") for n in range(TASKS)
        ]
        await eventually(lambda: all(h.status is TaskStatus.RUNNING for h in before), what="they run")
        epochs = dict(home.leases.owned()) if home.leases is not None else {}
        statuses = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        async with asyncio.timeout(30):
            assert (await statuses.read()).status == SERVING
            with paused(nats_server):
                stalled = asyncio.get_running_loop().time()
                # Through a session, as RemoteOrchestrator submits: the error its callers retry.
                with pytest.raises(OrchestratorUnavailableError):
                    await remote.execute_task("echo", {"text": "during"}, idempotency_key="during")
                with pytest.raises(aio.AioRpcError) as refused:
                    await pb_grpc.OrchestratorServiceStub(channel).SubmitTask(pb.SubmitTaskRequest(task=ECHO))
                assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
                assert (await statuses.read()).status == NOT_SERVING
                gates.open(gate)  # they end on the worker meanwhile: their ends are stored once NATS answers
                await eventually(lambda: _all_facts_waiting(home), what="their ends were not acknowledged")
                assert asyncio.get_running_loop().time() - stalled > ANSWER_SECONDS
            assert (await statuses.read()).status == SERVING
        assert (home.leases.owned() if home.leases is not None else {}) == epochs  # no partition lapsed

        # The refused submission (its key) is accepted once NATS answers, and runs once.
        again = await remote.execute_task("echo", {"text": "during"}, idempotency_key="during")
        assert await again.result(timeout_seconds=15) == {"text": "during"}
        for handle in before:
            assert await handle.result(timeout_seconds=15) == gate
            await eventually(lambda h=handle: _stored_end(home, h.task_id), timeout_seconds=15, what="end stored")
            await eventually(lambda h=handle: _logged_once(home, h.task_id), timeout_seconds=15, what="end published")
            assert [a.number for a in (await server.orchestrator.task(handle.task_id)).attempts] == [1]
    finally:
        await channel.close(None)
        await remote.aclose()


async def test_an_outage_longer_than_the_lease_stops_the_runs_and_each_task_ends_once_after_it(
    daemon: Daemon, start_worker: Callable[..., Any], gates: Gates, proxy: TcpProxy
) -> None:
    await start_worker(max_concurrent_tasks=8)
    lease = 2.0
    a, home_a = await daemon("a", url=proxy.url, lease_seconds=lease)
    _, home_b = await daemon("b", lease_seconds=lease)
    await eventually(lambda: _shared(home_a, home_b), timeout_seconds=20, what="the partitions are shared out")
    remote = RemoteOrchestrator(a.address)
    try:
        await remote.wait_for_workers("wait_for", timeout_seconds=5)
        gate = "partitioned-long-outage"
        handles = [
            await remote.execute_task("wait_for", {"name": gate}, idempotency_key=f"long-{n}") for n in range(TASKS)
        ]
        await eventually(lambda: all(h.status is TaskStatus.RUNNING for h in handles), what="they run on a")
        assert home_a.held == TASKS and home_b.held == 0

        await proxy.cut()  # a no longer reaches NATS; b and NATS run on
        await eventually(lambda: home_a.held == 0, timeout_seconds=10, what="a's partitions lapsed")
        assert not set(a.orchestrator.engine.index.live) & {h.task_id for h in handles}  # its runs stopped
        await eventually(lambda: home_b.held == TASKS, timeout_seconds=15, what="b took the tasks over")
        await proxy.restore()
        gates.open(gate)
        # The callers, still on a, see each task end: from the update log once a is back, run once.
        assert [await h.result(timeout_seconds=30) for h in handles] == [gate] * TASKS
        for handle in handles:
            assert [u.status for u in handle.updates].count(TaskStatus.COMPLETED) == 1
            await eventually(lambda h=handle: _stored_end(home_b, h.task_id), timeout_seconds=15, what="stored")
            await eventually(lambda h=handle: _logged_once(home_b, h.task_id), timeout_seconds=15, what="published")
            found = await home_b.store.get(handle.task_id)
            assert found is not None
            record = _convert.record_from_pb(pb.TaskRecord.FromString(found[0].record))
            assert [attempt.number for attempt in record.attempts] == [1]  # followed where it ran, not run again
    finally:
        await remote.aclose()


def _all_facts_waiting(home: PartitionedHome) -> bool:
    """Every run here ended, and the write of its end went unacknowledged (it waits to be tried again)."""
    held = [facts for partition in home.journal.counts() for facts in home.journal.of_partition(partition)]
    return len(held) == TASKS and all(f.doc.finished and f.backoff is not None for f in held)


def _shared(*homes: PartitionedHome) -> bool:
    owned = [set(home.leases.owned()) if home.leases is not None else set() for home in homes]
    return all(owned) and sum(len(o) for o in owned) == PARTITIONS


async def _stored_end(home: PartitionedHome, task_id: str) -> bool:
    found = await home.store.get(task_id)
    return found is not None and found[0].finished


async def _log(home: PartitionedHome, task_id: str) -> list[tuple[int, TaskStatus]]:
    """A task's updates as the update log keeps them, in its order: (number, status)."""
    last = await home.store.log.last(task_id)
    kept: list[tuple[int, TaskStatus]] = []
    async with asyncio.timeout(10):
        async for sequence, data in home.store.log.follow(task_id):
            kept.append((sequence, _convert.update_from_pb(pb.TaskResult.FromString(data)).status))
            if sequence == last:
                break
    return kept


async def _logged_once(home: PartitionedHome, task_id: str) -> bool:
    """The task's updates in the log are numbered 1, 2, ... in its order, with one terminal update: the last,
    COMPLETED."""
    kept = await _log(home, task_id)
    numbers = [number for number, _ in kept]
    ends = [status for _, status in kept if status.is_terminal]
    return numbers == list(range(1, len(kept) + 1)) and ends == [TaskStatus.COMPLETED] == [kept[-1][1]]
