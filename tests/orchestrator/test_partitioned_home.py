"""PartitionedHome on a real nats-server: the contract's script tells the memory home's story; two replicas
share the partitions and each task ends once; a replica that dies leaves its tasks to the other within the
lease, one that lives keeps them however long they run; idempotency keys hold across replicas; a task is
listed and canceled through a replica that does not run it; dead letters are shared; a replica refuses
tasks past its queue's bound; options that cannot work are refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gates, eventually
from tests.hitl.workers import AskingWorker
from tests.nats_server import NatsServer
from tests.orchestrator.replicas import Replica, replicas
from tests.orchestrator.test_contract import backend, script
from worker_abstraction import (
    AsyncOrchestrator,
    QueueFullError,
    RegistryServer,
    RetryPolicy,
    TaskCanceledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskOptions,
    TaskStatus,
)
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStoreOptions
from worker_abstraction.stores.jetstream import NatsOptions, NatsStoreError
from worker_abstraction.stores.jetstream.partitions import partition_of

pytestmark = pytest.mark.timeout(90)

PARTITIONS = 8


@pytest.fixture
async def replica(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Replica]:
    """Start one more orchestrator on the shared NATS (its own connection, as a separate daemon has)."""
    async with replicas(registry.address, nats_server.url, partitions=PARTITIONS, lease_seconds=10.0) as start:
        yield start


async def _share_settled(*homes: PartitionedHome) -> None:
    """Every partition held by exactly one of the homes."""

    def settled() -> bool:
        owned = [set(home.leases.owned()) if home.leases is not None else set() for home in homes]
        return sum(len(o) for o in owned) == PARTITIONS and set().union(*owned) == set(range(PARTITIONS))

    await eventually(settled, timeout_seconds=20, what="the partitions are shared out")


async def test_the_contract_script_tells_the_memory_homes_story(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates, tmp_path: Path, nats_server: NatsServer
) -> None:
    await start_worker()
    await start_worker(AskingWorker)  # (the script's questions, approvals and streams)
    (tmp_path / "memory").mkdir()
    async with backend("memory", registry.address, tmp_path / "memory") as orchestrator:
        here = await script(orchestrator, gates, "partitioned")
    home = await PartitionedHome.open(NatsOptions((nats_server.url,)), replica="solo", partitions=PARTITIONS)
    async with AsyncOrchestrator(registry.address, home=home) as orchestrator:
        there = await script(orchestrator, gates, "partitioned")
    assert there.lines == here.lines


async def test_two_replicas_share_the_tasks_and_each_ends_once(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker(max_concurrent_tasks=64)
    a, home_a = await replica("a")
    b, home_b = await replica("b")
    await _share_settled(home_a, home_b)
    await a.wait_for_workers("wait_for", timeout_seconds=5)
    await b.wait_for_workers("wait_for", timeout_seconds=5)
    gate = "partitioned-both"
    # Ids chosen by the caller land in every partition: each replica runs those of its own.
    handles = [await a.execute_task("wait_for", {"name": gate}, task_id=f"shared-{i}") for i in range(24)]
    handles += [await b.execute_task("wait_for", {"name": gate}) for _ in range(8)]
    await eventually(lambda: home_a.held > 0 and home_b.held > 0, timeout_seconds=10, what="both run tasks")
    assert home_a.held + home_b.held == 32
    gates.open(gate)
    assert await asyncio.gather(*(handle.result(timeout_seconds=15) for handle in handles)) == [gate] * 32
    for handle in handles:
        # Every update once, numbered in order, whichever replica ran it and whichever one the caller asked.
        assert [u.sequence for u in handle.updates if u.sequence] == list(range(1, len(handle.updates) + 1))
        assert [u.status for u in handle.updates].count(TaskStatus.COMPLETED) == 1
        for orchestrator in (a, b):
            await eventually(lambda o=orchestrator, h=handle: _is(_status(o, h.task_id), TaskStatus.COMPLETED))
    records = {record.task_id: record for record in await a.tasks()}
    assert all(len(records[h.task_id].attempts) == 1 for h in handles)  # each ran once
    await eventually(lambda: home_a.held == 0 and home_b.held == 0, what="nothing left held")


async def test_a_replica_that_dies_leaves_its_tasks_to_the_other_within_the_lease(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker(max_concurrent_tasks=16)
    lease = 2.0
    doomed, home_doomed = await replica("doomed", lease_seconds=lease)
    survivor, home_survivor = await replica("survivor", lease_seconds=lease)
    await _share_settled(home_doomed, home_survivor)
    await doomed.wait_for_workers("wait_for", timeout_seconds=5)
    gate = "partitioned-failover"
    submitted = [await doomed.execute_task("wait_for", {"name": gate}) for _ in range(6)]
    await eventually(lambda: home_doomed.held == 6, what="the doomed replica runs what it accepted")
    watched = [await survivor.watch(handle.task_id) for handle in submitted]  # callers moved to the survivor
    await eventually(lambda: all(h.status is TaskStatus.RUNNING for h in watched), what="running, seen elsewhere")

    died = asyncio.get_running_loop().time()
    await home_doomed.client.close()  # its connection dies: its lease is not kept, nothing is handed over
    await eventually(lambda: home_survivor.held == 6, timeout_seconds=15, what="the survivor took them over")
    taken = asyncio.get_running_loop().time() - died
    assert taken < lease + 3.0, taken  # the member key's life, the expiry marker, a claim: within the lease
    gates.open(gate)
    for handle in watched:
        assert await asyncio.wait_for(handle.result(), 15) == gate
        assert [u.status for u in handle.updates].count(TaskStatus.COMPLETED) == 1
        await eventually(lambda h=handle: _is(_status(survivor, h.task_id), TaskStatus.COMPLETED), what="finished")
        # Followed where it ran (its attempt was stored as sent), not run again.
        assert [a.number for a in (await survivor.task(handle.task_id)).attempts] == [1]


async def test_a_replica_joining_takes_its_share_of_running_tasks_and_their_callers_see_them_end(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker(max_concurrent_tasks=16)
    first, home_first = await replica("first")
    await first.wait_for_workers("wait_for", timeout_seconds=5)
    gate = "partitioned-rebalance"
    handles = [await first.execute_task("wait_for", {"name": gate}) for _ in range(12)]
    await eventually(lambda: all(h.status is TaskStatus.RUNNING for h in handles), what="all running on first")
    assert home_first.held == 12

    _, home_second = await replica("second")  # it wins about half the partitions: first gives them up
    await _share_settled(home_first, home_second)
    await eventually(lambda: home_second.held > 0 and home_first.held + home_second.held == 12, what="moved")
    gates.open(gate)
    assert await asyncio.gather(*(h.result(timeout_seconds=15) for h in handles)) == [gate] * 12
    for handle in handles:
        assert [u.status for u in handle.updates].count(TaskStatus.COMPLETED) == 1
        # The moved ones were followed where they ran: each ran once, as attempt 1.
        assert [a.number for a in handle.attempts] == [1]


async def test_an_idempotency_key_makes_one_task_across_replicas(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker(max_concurrent_tasks=16)
    a, home_a = await replica("a")
    b, home_b = await replica("b")
    await _share_settled(home_a, home_b)
    await a.wait_for_workers("echo", timeout_seconds=5)
    await b.wait_for_workers("echo", timeout_seconds=5)
    options = TaskOptions(idempotency_key="the-one")
    handles = await asyncio.gather(
        *(orch.execute_task("echo", {"text": str(i)}, options=options) for i, orch in enumerate([a, b] * 4))
    )
    assert len({handle.task_id for handle in handles}) == 1
    results = await asyncio.gather(*(handle.result(timeout_seconds=10) for handle in handles))
    assert len({result["text"] for result in results}) == 1
    later = await b.execute_task("echo", {"text": "later"}, options=options)
    assert later.task_id == handles[0].task_id and await later.result() == results[0]
    assert len([r for r in await a.tasks() if r.task_id == later.task_id]) == 1


async def test_a_task_is_canceled_through_the_replica_that_does_not_run_it(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker()
    runner, home_runner = await replica("runner")
    other, home_other = await replica("other")
    await _share_settled(home_runner, home_other)
    await runner.wait_for_workers("wait_for", timeout_seconds=5)
    handle = await runner.execute_task("wait_for", {"name": "never-opened"})
    assert partition_of(handle.task_id, PARTITIONS) in home_runner.leases.owned()  # type: ignore[union-attr]
    await eventually(lambda: handle.status is TaskStatus.RUNNING, what="it runs")
    # As its document stands, which says RUNNING once the fact that it was sent is written (behind).
    await eventually(lambda: _is(_status(other, handle.task_id), TaskStatus.RUNNING), what="running everywhere")

    async def listed_by_other() -> list[TaskStatus]:
        return [record.status for record in await other.tasks() if record.task_id == handle.task_id]

    assert await listed_by_other() == [TaskStatus.RUNNING]  # listed too, as its document stands
    assert await other.cancel(handle.task_id, "not needed") is True
    with pytest.raises(TaskCanceledError):
        await asyncio.wait_for(handle.result(), 15)
    await eventually(lambda: _is(_status(other, handle.task_id), TaskStatus.CANCELED), what="canceled everywhere")
    await eventually(lambda: _is(listed_by_other(), [TaskStatus.CANCELED]), what="listed as canceled elsewhere")
    assert await other.cancel(handle.task_id, "again") is False


async def test_dead_letters_made_on_one_replica_are_listed_requeued_and_purged_through_another(
    replica: Replica, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    policy = RetryPolicy(max_attempts=2, initial_backoff_seconds=0.01, retry_task_errors=True)
    runner, home_runner = await replica("runner", retry_policy=policy)
    other, home_other = await replica("other", retry_policy=policy)
    await _share_settled(home_runner, home_other)
    await runner.wait_for_workers("explode", timeout_seconds=5)
    await other.wait_for_workers("explode", timeout_seconds=5)
    handle = await runner.execute_task("explode", {"message": "always"})
    with pytest.raises(TaskFailedError):
        await handle.result(timeout_seconds=15)

    await eventually(lambda: _letters(other, 1), what="the dead letter is shared")
    [letter] = await other.dead_letters()
    assert (letter.task_id, letter.params) == (handle.task_id, {"message": "always"})
    assert [a.status for a in letter.attempts] == [TaskStatus.FAILED, TaskStatus.FAILED]

    again = await other.requeue_dead_letter(handle.task_id)  # taken from the shared ones: once
    assert again.task_id != handle.task_id
    with pytest.raises(TaskNotFoundError):
        await runner.requeue_dead_letter(handle.task_id)
    with pytest.raises(TaskFailedError):
        await again.result(timeout_seconds=15)
    await eventually(lambda: _letters(runner, 1), what="it failed for good again, seen by the runner")
    [letter] = await runner.dead_letters()
    assert letter.task_id == again.task_id
    assert await runner.purge_dead_letters() == 1
    assert await other.dead_letters() == []


async def test_a_task_that_runs_for_many_leases_stays_with_its_replica_and_runs_once(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker()
    lease = 1.0
    a, home_a = await replica("a", lease_seconds=lease)
    b, home_b = await replica("b", lease_seconds=lease)
    await _share_settled(home_a, home_b)
    await a.wait_for_workers("wait_for", timeout_seconds=5)
    gate = "partitioned-long-run"
    handle = await a.execute_task("wait_for", {"name": gate})
    await eventually(lambda: handle.status is TaskStatus.RUNNING, what="it runs on a")
    assert home_a.held == 1 and home_a.leases is not None
    owned, since = home_a.leases.owned(), time.monotonic()
    # The lease renewed for three of its lengths (what keeps the task where it runs, however long it runs).
    await eventually(lambda: home_a.leases.held_until > since + 3 * lease, timeout_seconds=10, what="renewed")
    assert home_a.leases.owned() == owned  # the same partitions, the same epochs: none lapsed or moved
    assert (home_a.held, home_b.held) == (1, 0)
    gates.open(gate)
    assert await handle.result(timeout_seconds=10) == gate
    await eventually(lambda: _is(_status(b, handle.task_id), TaskStatus.COMPLETED), what="finished, read elsewhere")
    assert [attempt.number for attempt in (await b.task(handle.task_id)).attempts] == [1]  # run once


async def test_a_replica_refuses_tasks_past_its_queues_bound_and_takes_them_again_once_some_ran(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker(max_concurrent_tasks=1)
    a, _ = await replica("a", max_queued=2)
    await a.wait_for_workers("wait_for", timeout_seconds=5)
    gate = "partitioned-full"
    running = await a.execute_task("wait_for", {"name": gate})
    await eventually(lambda: running.status is TaskStatus.RUNNING, what="one runs on the only slot")
    waiting = [await a.execute_task("wait_for", {"name": gate}) for _ in range(2)]
    with pytest.raises(QueueFullError):
        await a.execute_task("wait_for", {"name": gate})
    with pytest.raises(QueueFullError):  # (with a key, accepted another way: refused all the same)
        await a.execute_task("wait_for", {"name": gate}, idempotency_key="partitioned-full")
    gates.open(gate)
    assert [await h.result(timeout_seconds=10) for h in (running, *waiting)] == [gate] * 3
    # Room again: the refused key is accepted now, once, and runs.
    later = await a.execute_task("wait_for", {"name": gate}, idempotency_key="partitioned-full")
    assert await later.result(timeout_seconds=10) == gate
    again = await a.execute_task("wait_for", {"name": gate}, idempotency_key="partitioned-full")
    assert again.task_id == later.task_id


async def test_options_that_cannot_work_are_refused(registry: RegistryServer, nats_server: NatsServer) -> None:
    options = NatsOptions((nats_server.url,))
    with pytest.raises(NatsStoreError, match="partitions"):
        await PartitionedHome.open(options, replica="bad", partitions=0)
    with pytest.raises(NatsStoreError, match="replicas"):
        await PartitionedHome.open(options, replica="bad", store=PartitionedStoreOptions(replicas=7))
    home = await PartitionedHome.open(options, replica="bad", partitions=PARTITIONS, lease_seconds=0.5)
    orchestrator = AsyncOrchestrator(registry.address, home=home)
    try:
        with pytest.raises(NatsStoreError, match=r"lease_seconds must be at least 1, not 0\.5"):
            await orchestrator.start()
    finally:
        await orchestrator.aclose()


async def _letters(orchestrator: Any, count: int) -> bool:
    return len(await orchestrator.dead_letters()) == count


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _status(orchestrator: Any, task_id: str) -> TaskStatus:
    return (await orchestrator.task(task_id)).status
