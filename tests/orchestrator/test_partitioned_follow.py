"""What a PartitionedHome's followers hear, on a real nats-server: a watcher on another replica hears a task
update for update as its runner's caller does, and a failure as the same error; it sees a task end that its
runner stored but died before publishing (from the document, once the log stays silent), and one that ended
while the watcher's connection to NATS was down (from the document, as soon as it is back); a task's updates
are stored in order, the last one once its end is stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

from tests.conftest import Gates, eventually
from tests.nats_server import NatsServer
from tests.orchestrator.fake_edge import FakeEdge, FakeRegistry, fake_worker
from tests.orchestrator.replicas import Replica, replicas
from tests.tcp_proxy import TcpProxy
from worker_abstraction import AsyncOrchestrator, RegistryServer, RetryPolicy, TaskFailedError, TaskStatus
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.orchestrator.edge.link import WorkerLinks
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.orchestrator.homes.nats.partitioned_facts import TaskFacts
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.stores.jetstream import NatsOptions

pytestmark = pytest.mark.timeout(60)

PARTITIONS = 4


@pytest.fixture
async def replica(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Replica]:
    """Start one more orchestrator on the shared NATS (its own connection, as a separate daemon has)."""
    async with replicas(
        registry.address, nats_server.url, partitions=PARTITIONS, lease_seconds=10.0, silence_seconds=60.0
    ) as start:
        yield start


async def test_a_watcher_sees_the_end_its_runner_stored_but_died_before_publishing(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates, monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_worker()
    runner, home_runner = await replica("runner", lease_seconds=2.0)  # (alone: it holds every partition)
    watcher, home_watcher = await replica("watcher", lease_seconds=2.0, silence_seconds=0.5)
    await runner.wait_for_workers("wait_for", timeout_seconds=5)
    gate = "follow-runner-dies"
    handle = await runner.execute_task("wait_for", {"name": gate})
    watched = await watcher.watch(handle.task_id)
    await eventually(lambda: watched.status is TaskStatus.RUNNING, what="the watcher hears it run")

    stored = asyncio.Event()
    closing: list[asyncio.Task[None]] = []

    def died(facts: TaskFacts) -> None:  # right after its finished document is stored: nothing published
        stored.set()
        closing.append(asyncio.create_task(home_runner.client.close()))

    monkeypatch.setattr(home_runner.journal, "_ended", died)
    gates.open(gate)
    async with asyncio.timeout(10):
        await stored.wait()
        assert await watched.result() == gate
    assert [u.status for u in watched.updates].count(TaskStatus.COMPLETED) == 1
    # Nobody published the end: the watcher took it from the document.
    assert await home_watcher.store.log.last(handle.task_id) == watched.updates[-2].sequence
    record = await watcher.task(handle.task_id)
    assert record.status is TaskStatus.COMPLETED and [a.number for a in record.attempts] == [1]


async def test_a_watcher_whose_connection_came_back_reads_the_end_it_missed_from_the_document(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates, nats_proxy: TcpProxy
) -> None:
    await start_worker()
    runner, home_runner = await replica("runner")
    # It hears nothing for 60 s before it reads the document: only the reconnection can end it in time.
    watcher, _ = await replica("watcher", url=nats_proxy.url, silence_seconds=60.0)
    await runner.wait_for_workers("wait_for", timeout_seconds=5)
    gate = "follow-reconnected"
    handle = await runner.execute_task("wait_for", {"name": gate})
    assert home_runner.held == 1  # (drawn into a partition the runner holds)
    watched = await watcher.watch(handle.task_id)
    await eventually(lambda: watched.status is TaskStatus.RUNNING, what="the watcher hears it run")

    await nats_proxy.cut()
    gates.open(gate)
    assert await handle.result(timeout_seconds=10) == gate
    final = handle.updates[-1].sequence
    await eventually(lambda: _last(home_runner, handle.task_id, final), what="the end is in the update log")
    assert not watched.done()  # (published while the watcher was cut off: it never reached it)
    await nats_proxy.restore()
    assert await asyncio.wait_for(watched.result(), 15) == gate
    assert [u.status for u in watched.updates].count(TaskStatus.COMPLETED) == 1


async def _last(home: PartitionedHome, task_id: str, number: int) -> bool:
    return await home.store.log.last(task_id) == number


WORKER = fake_worker("w1", slots=1)


async def test_updates_go_out_in_order_and_the_last_once_the_end_is_stored(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = await PartitionedHome.open(NatsOptions((nats_server.url,)), replica="a", partitions=PARTITIONS)
    edge = FakeEdge(WORKER)
    directory = WorkerDirectory(cast(RegistryClient, FakeRegistry(WORKER)))
    orchestrator = AsyncOrchestrator("fake-registry:1", links=cast(WorkerLinks, edge), directory=directory, home=home)
    try:
        await orchestrator.wait_for_workers("job", timeout_seconds=5)
        sent: list[tuple[int, bool]] = []  # (number, the task's end stored by then)
        send = home.store.send_update

        def sending(task_id: str, sequence: int, data: bytes) -> None:
            sent.append((sequence, home.journal.facts(task_id) is None))  # (let go once its end is stored)
            send(task_id, sequence, data)

        monkeypatch.setattr(home.store, "send_update", sending)
        handle = await orchestrator.execute_task("job", {})
        async with asyncio.timeout(10):
            attempt = await edge.next_sent()
        attempt.accept()
        for _ in range(3):
            attempt.say(TaskStatus.RUNNING)
        attempt.say(TaskStatus.COMPLETED, output_json='"done"')
        assert await handle.result(timeout_seconds=10) == "done"
        numbers = [u.sequence for u in handle.updates]
        assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 4
        await eventually(lambda: _last(home, handle.task_id, numbers[-1]), what="every update is stored")
        assert sent == [(number, number == numbers[-1]) for number in numbers]
        # The stream holds them in order, so a follower reading it from the start hears every one.
        stored = []
        async with asyncio.timeout(10):
            async for sequence, _ in home.store.log.follow(handle.task_id):
                stored.append(sequence)
                if sequence == numbers[-1]:
                    break
        assert stored == numbers
    finally:
        await orchestrator.aclose()


Pair = tuple[tuple[AsyncOrchestrator, FakeEdge], tuple[AsyncOrchestrator, FakeEdge]]


@pytest.fixture
async def pair(nats_server: NatsServer) -> AsyncIterator[Pair]:
    """Two replicas sharing the partitions, each with its own worker edge: (runner, watcher)."""
    started: list[tuple[AsyncOrchestrator, FakeEdge]] = []
    homes: list[PartitionedHome] = []
    try:
        for name in ("runner", "watcher"):
            home = await PartitionedHome.open(NatsOptions((nats_server.url,)), replica=name, partitions=PARTITIONS)
            homes.append(home)
            edge = FakeEdge(WORKER)
            directory = WorkerDirectory(cast(RegistryClient, FakeRegistry(WORKER)))
            orchestrator = AsyncOrchestrator(
                "fake-registry:1",
                links=cast(WorkerLinks, edge),
                directory=directory,
                home=home,
                retry_policy=RetryPolicy(max_attempts=1),
            )
            started.append((orchestrator, edge))
            await orchestrator.wait_for_workers("job", timeout_seconds=5)

        def shared() -> bool:  # each holds its share (none moves while the test runs)
            owned = [set(home.leases.owned()) if home.leases is not None else set() for home in homes]
            return all(owned) and sum(len(o) for o in owned) == PARTITIONS

        await eventually(shared, timeout_seconds=20, what="the partitions are shared out")
        yield started[0], started[1]
    finally:
        for orchestrator, _ in started:
            await orchestrator.aclose()


async def test_a_task_run_on_one_replica_is_heard_update_for_update_on_another(pair: Pair) -> None:
    (runner, edge), (watcher, watcher_edge) = pair
    handle = await runner.execute_task("job", {})  # (in a partition the runner holds: it runs it)
    watched = await watcher.watch(handle.task_id)  # before anything is heard of it
    async with asyncio.timeout(10):
        attempt = await edge.next_sent()
    attempt.accept()
    attempt.say(TaskStatus.RUNNING)
    attempt.say(TaskStatus.RUNNING)
    attempt.say(TaskStatus.COMPLETED, output_json='"done"')
    assert await handle.result(timeout_seconds=10) == "done"
    assert await watched.result(timeout_seconds=10) == "done"
    assert [(u.sequence, u.status) for u in watched.updates] == [(u.sequence, u.status) for u in handle.updates]
    assert [u.sequence for u in watched.updates] == list(range(1, len(watched.updates) + 1))
    assert [u.status for u in watched.updates][-3:] == [TaskStatus.RUNNING, TaskStatus.RUNNING, TaskStatus.COMPLETED]
    assert watched.worker_id == handle.worker_id == "w1"
    assert [a.number for a in watched.attempts] == [a.number for a in handle.attempts] == [1]
    assert await watched.cancel("too late") is False  # it finished: nothing is asked of anyone
    assert edge.cancels == [] and watcher_edge.sent == []
    record = await watcher.task(handle.task_id)
    assert (record.status, record.cancel_reason) == (TaskStatus.COMPLETED, "")


async def test_a_failed_task_fails_the_same_way_where_it_is_watched(pair: Pair) -> None:
    (runner, edge), (watcher, _) = pair
    handle = await runner.execute_task("job", {})
    watched = await watcher.watch(handle.task_id)
    async with asyncio.timeout(10):
        attempt = await edge.next_sent()
    attempt.accept()
    attempt.say(TaskStatus.FAILED, error_message="no luck")
    with pytest.raises(TaskFailedError) as here:
        await handle.result(timeout_seconds=10)
    with pytest.raises(TaskFailedError) as there:
        await watched.result(timeout_seconds=10)
    assert str(there.value) == str(here.value) and "no luck" in str(there.value)
    assert (there.value.task_id, there.value.error_message) == (here.value.task_id, here.value.error_message)
