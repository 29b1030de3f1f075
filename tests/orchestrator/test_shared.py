"""Two orchestrators sharing tasks on a real nats-server: both run them, each counts once, a dead one's go on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import Gates, eventually
from tests.nats_server import NatsServer
from worker_abstraction import (
    AsyncOrchestrator,
    RegistryServer,
    RetryPolicy,
    TaskCanceledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskStatus,
)
from worker_abstraction.orchestrator.homes.nats.home import NatsHome
from worker_abstraction.stores.jetstream import NatsOptions, WorkQueueOptions

pytestmark = pytest.mark.timeout(90)
Replica = Callable[..., Awaitable[tuple[AsyncOrchestrator, NatsHome]]]


@pytest.fixture
async def replica(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Replica]:
    """Start one more orchestrator replica on the shared NATS (its own connection, as a separate daemon)."""
    started: list[AsyncOrchestrator] = []

    async def start(
        name: str, *, lease_seconds: float = 30.0, prefetch: int = 2, **options: Any
    ) -> tuple[AsyncOrchestrator, NatsHome]:
        shared = await NatsHome.open(
            NatsOptions((nats_server.url,)),
            replica=name,
            work=WorkQueueOptions(lease_seconds=lease_seconds),
            prefetch=prefetch,
        )
        orchestrator = AsyncOrchestrator(registry.address, home=shared, **options)
        await orchestrator.start()
        started.append(orchestrator)
        return orchestrator, shared

    yield start
    for orchestrator in started:
        await orchestrator.aclose()


async def test_tasks_accepted_by_one_replica_run_on_both_and_each_finishes_once(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker(max_concurrent_tasks=4)
    a, shared_a = await replica("a")
    b, shared_b = await replica("b")
    await a.wait_for_workers("wait_for", timeout_seconds=5)
    await b.wait_for_workers("wait_for", timeout_seconds=5)
    gate = "shared-both"
    handles = [await a.execute_task("wait_for", {"name": gate}) for _ in range(16)]
    # More than one replica's room (4 on the worker, 2 waiting): the other takes the rest.
    await eventually(lambda: shared_a.held > 0 and shared_b.held > 0, timeout_seconds=10, what="both hold tasks")
    gates.open(gate)
    results = await asyncio.gather(*(handle.result() for handle in handles))
    assert results == [gate] * 16
    for handle in handles:
        # Readable from the replica it was not submitted to (its document is finished just after its last update).
        await eventually(lambda h=handle: _is(_status(b, h.task_id), TaskStatus.COMPLETED), what="read elsewhere")
        assert [u.sequence for u in handle.updates] == list(range(1, len(handle.updates) + 1))


async def test_a_replica_that_dies_leaves_its_tasks_to_another_and_their_watchers_see_them_end(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker(max_concurrent_tasks=8)
    doomed, shared_doomed = await replica("doomed", lease_seconds=1, prefetch=8)
    await doomed.wait_for_workers("wait_for", timeout_seconds=5)
    gate = "shared-failover"
    submitted = [await doomed.execute_task("wait_for", {"name": gate}) for _ in range(4)]
    await eventually(lambda: shared_doomed.held == 4, timeout_seconds=10, what="the doomed replica runs them all")
    survivor, shared_survivor = await replica("survivor", lease_seconds=1)
    await survivor.wait_for_workers("wait_for", timeout_seconds=5)
    watched = [await survivor.watch(handle.task_id) for handle in submitted]  # callers moved to the survivor

    await shared_doomed.client.close()  # the doomed replica's connection dies: its leases are not kept
    await eventually(lambda: shared_survivor.held == 4, timeout_seconds=15, what="the survivor took them over")
    gates.open(gate)
    for handle in watched:
        assert await asyncio.wait_for(handle.result(), 15) == gate
        await eventually(lambda h=handle: _is(_status(survivor, h.task_id), TaskStatus.COMPLETED), what="read")


async def test_a_task_is_canceled_through_a_replica_that_does_not_run_it(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker()
    runner, shared_runner = await replica("runner")
    await runner.wait_for_workers("wait_for", timeout_seconds=5)
    handle = await runner.execute_task("wait_for", {"name": "never-opened"})
    await eventually(lambda: shared_runner.held == 1, what="the runner took it")
    other, _ = await replica("other")

    async def listed_by_other() -> list[TaskStatus]:
        return [record.status for record in await other.tasks() if record.task_id == handle.task_id]

    # Listed by the replica that does not run it, as its document stands (RUNNING once it was sent).
    await eventually(lambda: _is(listed_by_other(), [TaskStatus.RUNNING]), what="listed as running elsewhere")
    assert (await other.task(handle.task_id)).status is TaskStatus.RUNNING
    assert await other.cancel(handle.task_id, "not needed") is True
    with pytest.raises(TaskCanceledError):
        await asyncio.wait_for(handle.result(), 15)

    async def read_by_other() -> TaskStatus:
        return (await other.task(handle.task_id)).status

    # The document is finished just after the last update is published: a read elsewhere catches up.
    await eventually(lambda: _is(read_by_other(), TaskStatus.CANCELED), what="read as canceled elsewhere")
    await eventually(lambda: _is(listed_by_other(), [TaskStatus.CANCELED]), what="listed as canceled")


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_dead_letters_made_on_one_replica_are_listed_requeued_and_purged_through_another(
    replica: Replica, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    policy = RetryPolicy(max_attempts=2, initial_backoff_seconds=0.01, retry_task_errors=True)
    runner, _ = await replica("runner", retry_policy=policy)
    await runner.wait_for_workers("explode", timeout_seconds=5)
    handle = await runner.execute_task("explode", {"message": "always"})
    with pytest.raises(TaskFailedError):
        await handle.result(timeout_seconds=15)

    other, _ = await replica("other", retry_policy=policy)
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
    await eventually(lambda: _letters(runner, 1), what="it failed for good again")
    assert await runner.purge_dead_letters() == 1
    assert await other.dead_letters() == []


async def _letters(orchestrator: Any, count: int) -> bool:
    return len(await orchestrator.dead_letters()) == count


async def _status(orchestrator: Any, task_id: str) -> TaskStatus:
    return (await orchestrator.task(task_id)).status
