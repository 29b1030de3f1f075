"""Work that keeps killing its holder (PartitionedHome, on a real nats-server): a task taken over `max_takes`
times from daemons that died ends FAILED, saying so, as a dead letter that can be requeued; a task whose
daemon stopped (gave its partitions back) is carried on by the next one, not counted as taken over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import Gates, eventually
from tests.nats_server import NatsServer
from tests.orchestrator.replicas import Replica, replicas
from worker_abstraction import RegistryServer, TaskFailedError, TaskStatus

pytestmark = pytest.mark.timeout(90)

PARTITIONS = 4
LEASE_SECONDS = 2.0


@pytest.fixture
async def replica(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Replica]:
    """Start one more orchestrator on the shared NATS (its own connection, as a separate daemon has)."""
    async with replicas(registry.address, nats_server.url, partitions=PARTITIONS, lease_seconds=LEASE_SECONDS) as start:
        yield start


async def test_a_task_taken_over_max_takes_times_ends_failed_as_a_dead_letter(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker()
    gate = "takes-never"
    first, home_first = await replica("first")
    await first.wait_for_workers("wait_for", timeout_seconds=5)
    handle = await first.execute_task("wait_for", {"name": gate})
    await eventually(lambda: handle.status is TaskStatus.RUNNING, what="it runs on the first")
    await home_first.client.close()  # dies (1st take next)

    _, home_second = await replica("second", max_takes=2)
    await eventually(lambda: home_second.held == 1, timeout_seconds=15, what="the second took it over")
    await home_second.client.close()  # dies too (2nd take next: the bound)

    third, _ = await replica("third", max_takes=2)
    watched = await third.watch(handle.task_id)
    with pytest.raises(TaskFailedError, match="taken over 2 times and never finished"):
        await asyncio.wait_for(watched.result(), 20)
    record = await third.task(handle.task_id)
    assert record.status is TaskStatus.FAILED and record.dead_lettered
    letters = await third.dead_letters()
    assert [letter.task_id for letter in letters] == [handle.task_id]
    assert "taken over 2 times" in letters[0].error_message
    requeued = await third.requeue_dead_letter(handle.task_id)  # as submitted: a new task
    gates.open(gate)
    assert await requeued.result(timeout_seconds=15) == gate


async def test_a_task_given_back_by_a_stopping_daemon_is_carried_on_not_counted(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker()
    gate = "takes-given-back"
    first, _ = await replica("first", max_takes=1)
    await first.wait_for_workers("wait_for", timeout_seconds=5)
    handle = await first.execute_task("wait_for", {"name": gate})
    await eventually(lambda: handle.status is TaskStatus.RUNNING, what="it runs on the first")
    second, home_second = await replica("second", max_takes=1)
    await first.aclose()  # stops: gives its partitions back
    await eventually(lambda: home_second.held == 1, timeout_seconds=15, what="the second carries it on")
    gates.open(gate)
    watched = await second.watch(handle.task_id)
    assert await asyncio.wait_for(watched.result(), 15) == gate
    record = await second.task(handle.task_id)
    assert record.status is TaskStatus.COMPLETED and [a.number for a in record.attempts] == [1]
