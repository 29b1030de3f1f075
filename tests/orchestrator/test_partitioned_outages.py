"""PartitionedHome daemons while NATS does not answer (a real nats-server, real workers, callers through the
daemon's gRPC). Shorter than the lease (NATS stopped with SIGSTOP, past the writer's acknowledgement timeout):
submissions, reads, cancels and dead-letter listings are refused UNAVAILABLE (never INTERNAL), the daemon's
health says NOT_SERVING and then SERVING again (its metrics count the failures, its log says so once), and
each task accepted before ends once after it. Longer than the lease (one daemon cut off from NATS by a TCP
proxy): its partitions lapse and its runs stop, the other daemon takes the tasks over, and once the first is
back its callers see each task end once, run once. A daemon whose reading of a partition fails (NATS not
answering, or an error nobody foresaw) reads it again: the tasks it takes over still run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, ClassVar

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests.conftest import Gates, eventually
from tests.faulty_nats import FaultyConnection
from tests.nats_server import NatsServer
from tests.tcp_proxy import TcpProxy
from worker_abstraction import OrchestratorUnavailableError, RegistryServer, RemoteOrchestrator, TaskStatus, _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.observability.metrics import OrchestratorMetrics
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStore, PartitionedStoreOptions
from worker_abstraction.stores.jetstream import NatsOptions, NatsUnavailableError, UpdateLogOptions, connect
from worker_abstraction.stores.jetstream.partitions import PartitionOptions

pytestmark = pytest.mark.timeout(90)

PARTITIONS = 8
ANSWER_SECONDS = 0.5  # how long a daemon waits for NATS to acknowledge a write (or answer a read)
TASKS = 4
ECHO = pb.Task(capability_name="echo", parameters=[pb.TaskParameter(key="text", value_json='"raw"')])
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
Daemon = Callable[..., Awaitable[tuple[OrchestratorServer, PartitionedHome]]]


@pytest.fixture
async def daemon(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Daemon]:
    """Start an orchestrator daemon on a PartitionedHome (`url`: where it reaches NATS; `connection`: the
    connection it uses instead, a FaultyConnection; `store`: the class of its store)."""
    started: list[OrchestratorServer] = []
    connections: list[Client] = []

    async def start(
        name: str,
        *,
        url: str = nats_server.url,
        lease_seconds: float,
        connection: Client | None = None,
        store: type[PartitionedStore] = PartitionedStore,
        **options: Any,
    ) -> tuple[OrchestratorServer, PartitionedHome]:
        stored = PartitionedStoreOptions(
            partitions=PARTITIONS,
            answer_timeout_seconds=ANSWER_SECONDS,
            updates=UpdateLogOptions(answer_timeout_seconds=ANSWER_SECONDS),
        )
        if connection is None and store is PartitionedStore:
            home = await PartitionedHome.open(
                NatsOptions((url,)), replica=name, partitions=PARTITIONS, lease_seconds=lease_seconds, store=stored
            )
        else:
            if connection is None:
                connection = await connect(NatsOptions((url,)))
            connections.append(connection)
            leased = PartitionOptions(partitions=PARTITIONS, lease_seconds=lease_seconds)
            opened = await store.open(connection, stored)
            home = PartitionedHome(connection, opened, replica=name, partitions=leased)
        server = OrchestratorServer(registry.address, port=0, home=home, **options)
        await server.start()
        started.append(server)
        return server, home

    yield start
    for connection in connections:
        if isinstance(connection, FaultyConnection):
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
    daemon: Daemon, start_worker: Callable[..., Any], gates: Gates, nats_proxy: TcpProxy
) -> None:
    await start_worker(max_concurrent_tasks=8)
    lease = 2.0
    a, home_a = await daemon("a", url=nats_proxy.url, lease_seconds=lease)
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

        await nats_proxy.cut()  # a no longer reaches NATS; b and NATS run on
        await eventually(lambda: home_a.held == 0, timeout_seconds=10, what="a's partitions lapsed")
        ids = {h.task_id for h in handles}
        # Its runs stop as their holds are told of the lapse (a turn or more of a's loop after the count drops).
        await eventually(lambda: not set(a.orchestrator.engine.index.live) & ids, what="a's runs stopped")
        await eventually(lambda: home_b.held == TASKS, timeout_seconds=15, what="b took the tasks over")
        await nats_proxy.restore()
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


async def test_reads_cancels_and_dead_letters_while_nats_does_not_answer_are_refused_unavailable(
    daemon: Daemon, start_worker: Callable[..., Any], nats_server: NatsServer
) -> None:
    await start_worker()
    server, _ = await daemon("a", lease_seconds=10.0)
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
        again = await remote.execute_task("echo", {"text": "hi"}, idempotency_key="outage-1")
        assert again.task_id == handle.task_id
    finally:
        await channel.close(None)
        await remote.aclose()


async def test_while_nats_does_not_answer_the_daemon_is_not_serving_counts_it_and_logs_it_once(
    daemon: Daemon, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    connection = await FaultyConnection.open(nats_server.url)
    metrics = OrchestratorMetrics()
    server, _ = await daemon("a", lease_seconds=10.0, connection=connection, metrics=metrics)
    channel = aio.insecure_channel(server.address)

    def sample(name: str) -> float | None:
        return metrics.registry.get_sample_value(name)

    try:
        statuses = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        async with asyncio.timeout(20):
            assert (await statuses.read()).status == SERVING
            caplog.set_level(logging.INFO, logger="worker_abstraction.stores.availability")
            connection.down = True
            assert (await statuses.read()).status == NOT_SERVING
            assert sample("wa_store_available") == 0
            # (no event says "tried again": the count is read until NATS was asked three times in vain)
            await eventually(lambda: (sample("wa_store_errors_total") or 0) >= 3, timeout_seconds=10, what="retries")
            connection.down = False
            assert (await statuses.read()).status == SERVING
        assert sample("wa_store_available") == 1
        said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.endswith("stores.availability")]
        assert [level for level, _ in said] == [logging.WARNING, logging.INFO], said  # once down, once back
    finally:
        await channel.close(None)


class FirstReadsFail(PartitionedStore):
    """A store whose first read of each partition fails with `error` (NATS not answering, or an error nobody
    foresaw); `failing(error)` makes such a store class, with its own record of the partitions that failed."""

    error: ClassVar[type[Exception]] = NatsUnavailableError
    failed: ClassVar[set[int]] = set()

    @classmethod
    def failing(cls, error: type[Exception]) -> type[FirstReadsFail]:
        return type("FirstReadsFail", (cls,), {"error": error, "failed": set()})

    async def scan_partition(self, partition: int, seen: Callable[[Msg], None]) -> None:
        if partition not in self.failed:
            self.failed.add(partition)
            raise self.error(f"reading partition {partition} failed")
        await super().scan_partition(partition, seen)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(NatsUnavailableError, id="nats-error"),
        pytest.param(RuntimeError, id="unforeseen-error"),
    ],
)
async def test_a_daemon_whose_first_read_of_its_partitions_failed_reads_them_again_and_runs_their_tasks(
    daemon: Daemon, start_worker: Callable[..., Any], gates: Gates, error: type[Exception]
) -> None:
    await start_worker()
    lease = 2.0
    first, home_first = await daemon("first", lease_seconds=lease)
    remote = RemoteOrchestrator(first.address)
    try:
        await remote.wait_for_workers("wait_for", timeout_seconds=5)
        gate = f"scan-{error.__name__}"
        handles = [await remote.execute_task("wait_for", {"name": gate}) for _ in range(TASKS)]
        await eventually(lambda: all(h.status is TaskStatus.RUNNING for h in handles), what="they run on first")
    finally:
        await remote.aclose()
    await home_first.client.close()  # first dies: second takes its partitions (and so its tasks) over

    store = FirstReadsFail.failing(error)
    second, home_second = await daemon("second", lease_seconds=lease, store=store)
    await eventually(lambda: home_second.held == TASKS, timeout_seconds=10, what="second took the tasks over")
    assert store.failed == set(range(PARTITIONS))  # (each partition's first read failed)
    gates.open(gate)
    for handle in handles:
        watched = await second.orchestrator.watch(handle.task_id)
        assert await watched.result(timeout_seconds=15) == gate
        assert [a.number for a in (await second.orchestrator.task(handle.task_id)).attempts] == [1]


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
