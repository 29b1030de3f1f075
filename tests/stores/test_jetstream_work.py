"""The shared work queue against a real nats-server: leases taken once, kept, lost to a dead replica, exhausted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.aio.client import Client

from tests.conftest import eventually
from tests.nats_server import NatsServer
from worker_abstraction.errors import QueueFullError
from worker_abstraction.stores.jetstream import NatsOptions, NatsStoreError, connect
from worker_abstraction.stores.jetstream.work import WorkQueue, WorkQueueOptions

Open = Callable[..., Awaitable[tuple[WorkQueue, Client]]]
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def replica(nats_server: NatsServer) -> AsyncIterator[Open]:
    """Open a replica's view of the queue: its own connection, as a separate daemon has."""
    opened: list[tuple[WorkQueue, Client]] = []

    async def open_(**options: object) -> tuple[WorkQueue, Client]:
        client = await connect(NatsOptions((nats_server.url,)))
        queue = await WorkQueue.open(client, WorkQueueOptions(**options))  # type: ignore[arg-type]
        opened.append((queue, client))
        return queue, client

    yield open_
    for queue, client in opened:
        if client.is_connected:
            await queue.close()
            await client.close()


async def test_work_put_under_a_partition_is_taken_from_it_once_and_done(replica: Open) -> None:
    queue, _ = await replica()
    for key in ("t1", "t2", "t3"):
        await queue.put("text stats", key)
    await queue.put("other capability", "t4")

    leases = await queue.take("text stats", 10, wait_seconds=2)
    assert sorted(lease.key for lease in leases) == ["t1", "t2", "t3"]
    assert {lease.deliveries for lease in leases} == {1}
    for lease in leases:
        await lease.done()
    assert await queue.take("text stats", 10, wait_seconds=0.5) == []
    assert [lease.key for lease in await queue.take("other capability", 10, wait_seconds=2)] == ["t4"]


async def test_a_put_retried_with_one_dedupe_id_is_stored_once(replica: Open) -> None:
    queue, _ = await replica()
    first = await queue.put("p", "t1")
    assert await queue.put("p", "t1") == first  # the same message: the retry of a put whose answer was lost
    await queue.put("p", "t1", dedupe_id="t1#2")  # the same task queued again on purpose
    assert [lease.key for lease in await queue.take("p", 10, wait_seconds=2)] == ["t1", "t1"]


async def test_two_replicas_share_the_work_without_both_taking_any(replica: Open) -> None:
    a, _ = await replica()
    b, _ = await replica()
    for number in range(20):
        await a.put("p", f"t{number}")
    taken_a = await a.take("p", 10, wait_seconds=2)
    taken_b = await b.take("p", 20, wait_seconds=2)
    keys_a, keys_b = {lease.key for lease in taken_a}, {lease.key for lease in taken_b}
    assert len(taken_a) == 10 and not keys_a & keys_b
    assert keys_a | keys_b == {f"t{number}" for number in range(20)}


async def test_a_replica_that_dies_loses_its_leases_to_another(replica: Open) -> None:
    a, a_client = await replica(lease_seconds=1)
    b, _ = await replica(lease_seconds=1)
    await a.put("p", "t1")
    (held,) = await a.take("p", 1, wait_seconds=2)
    await a_client.close()  # killed: its leases are no longer kept

    (taken,) = await b.take("p", 1, wait_seconds=10)
    assert (taken.key, taken.deliveries) == ("t1", 2)
    assert held.deliveries == 1


async def test_a_lease_kept_alive_is_not_given_to_another_however_long_the_work_runs(replica: Open) -> None:
    a, _ = await replica(lease_seconds=1)
    b, _ = await replica(lease_seconds=1)
    await a.put("p", "long")
    (lease,) = await a.take("p", 1, wait_seconds=2)
    assert await b.take("p", 1, wait_seconds=3.5) == []  # three lease lengths: the keeper extended it
    assert lease.held
    await lease.done()
    assert not lease.held
    assert await b.take("p", 1, wait_seconds=1.5) == []  # done: never delivered again


async def test_work_given_back_or_left_by_a_clean_close_goes_to_another_at_once(replica: Open) -> None:
    a, _ = await replica(lease_seconds=30)
    b, _ = await replica(lease_seconds=30)
    await a.put("p", "t1")
    await a.put("p", "t2")
    first, second = await a.take("p", 2, wait_seconds=2)
    await first.give_back()
    (again,) = await b.take("p", 1, wait_seconds=2)  # long before the 30 s lease would run out
    assert (again.key, again.deliveries) == (first.key, 2)
    await a.close()  # hands `second` over
    (handed,) = await b.take("p", 1, wait_seconds=2)
    assert handed.key == second.key


async def test_work_never_done_in_max_deliveries_is_left_for_the_exhausted_list(replica: Open) -> None:
    queue, _ = await replica(max_deliveries=2)
    sequence = await queue.put("poison", "t1")
    for delivery in (1, 2):
        (lease,) = await queue.take("poison", 1, wait_seconds=2)
        assert lease.deliveries == delivery
        await lease.give_back()
    assert await queue.take("poison", 1, wait_seconds=1) == []

    (exhausted,) = await queue.exhausted(10, wait_seconds=5)
    assert (exhausted.key, exhausted.sequence, exhausted.deliveries) == ("t1", sequence, 2)
    await exhausted.settle()
    assert await queue.exhausted(10, wait_seconds=0.5) == []
    await queue.put("poison", "t2")  # the removed message no longer counts against the queue
    assert [lease.key for lease in await queue.take("poison", 5, wait_seconds=2)] == ["t2"]


async def test_a_full_queue_refuses_more_work_and_takes_it_again_once_some_is_done(replica: Open) -> None:
    queue, _ = await replica(max_queued=2)
    await queue.put("p", "t1")
    await queue.put("p", "t2")
    with pytest.raises(QueueFullError, match="queue full: 2"):
        await queue.put("p", "t3")
    (lease,) = await queue.take("p", 1, wait_seconds=2)
    await lease.done()  # (the acknowledgement is not awaited: the server frees the room a moment later)

    async def room_again() -> bool:
        try:
            await queue.put("p", "t3")
        except QueueFullError:
            return False
        return True

    await eventually(room_again, what="the queue took work again once some was done")


async def test_options_that_cannot_work_are_refused_naming_each(nats_server: NatsServer) -> None:
    client = await connect(NatsOptions((nats_server.url,)))
    try:
        with pytest.raises(NatsStoreError, match=r"lease_seconds must be at least 1, not 0.5.*replicas must be 1 to 5"):
            await WorkQueue.open(client, WorkQueueOptions(lease_seconds=0.5, replicas=7))
    finally:
        await client.close()
