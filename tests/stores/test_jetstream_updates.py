"""The update log against a real nats-server: any replica replays and follows a task's updates, in order, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.aio.client import Client

from tests.conftest import eventually
from tests.nats_server import NatsServer
from worker_abstraction.stores.jetstream import NatsOptions, NatsStoreError, connect
from worker_abstraction.stores.jetstream.updates import UpdateLog, UpdateLogOptions

Open = Callable[..., Awaitable[tuple[UpdateLog, Client]]]
pytestmark = pytest.mark.timeout(60)
TASK = "task/with odd.chars*>"  # any id: its subject is a digest


@pytest.fixture
async def replica(nats_server: NatsServer) -> AsyncIterator[Open]:
    """Open a replica's update log: its own connection, as a separate daemon has."""
    opened: list[tuple[UpdateLog, Client]] = []

    async def open_(**options: object) -> tuple[UpdateLog, Client]:
        client = await connect(NatsOptions((nats_server.url,)))
        log = await UpdateLog.open(client, UpdateLogOptions(**options))  # type: ignore[arg-type]
        opened.append((log, client))
        return log, client

    yield open_
    for log, client in opened:
        if client.is_connected:
            await log.close()
            await client.close()


async def _next(updates: AsyncIterator[tuple[int, bytes]], count: int = 1) -> list[tuple[int, bytes]]:
    async with asyncio.timeout(10):
        return [await anext(updates) for _ in range(count)]


async def test_a_follower_gets_what_was_kept_then_what_comes_in_order(replica: Open) -> None:
    runner, _ = await replica()
    watcher, _ = await replica()
    for number in (1, 2, 3):
        await runner.publish(TASK, number, b"update %d" % number)

    updates = watcher.follow(TASK)
    assert await _next(updates, 3) == [(1, b"update 1"), (2, b"update 2"), (3, b"update 3")]
    await runner.publish(TASK, 4, b"update 4")
    assert await _next(updates) == [(4, b"update 4")]
    await updates.aclose()


async def test_a_follower_starts_after_the_updates_it_has_seen(replica: Open) -> None:
    runner, _ = await replica()
    for number in (1, 2, 3):
        await runner.publish(TASK, number, b"%d" % number)
    updates = runner.follow(TASK, after=2)
    assert await _next(updates) == [(3, b"3")]
    await runner.publish(TASK, 4, b"4")
    assert await _next(updates) == [(4, b"4")]
    await updates.aclose()


async def test_a_follower_that_comes_first_gets_every_update_as_it_is_published(replica: Open) -> None:
    runner, _ = await replica()
    watcher, _ = await replica()
    updates = watcher.follow("fresh")
    first = asyncio.ensure_future(_next(updates, 2))
    await eventually(lambda: watcher.is_following("fresh"), what="the follower listens")
    await runner.publish("fresh", 1, b"a")
    await runner.publish("fresh", 2, b"b")
    assert await first == [(1, b"a"), (2, b"b")]
    await updates.aclose()


async def test_an_update_published_again_by_a_replica_that_took_the_task_over_is_kept_once(replica: Open) -> None:
    old_owner, old_client = await replica()
    watcher, _ = await replica()
    updates = watcher.follow(TASK)
    await old_owner.publish(TASK, 1, b"PENDING")
    await old_owner.publish(TASK, 2, b"RUNNING")
    assert await _next(updates, 2) == [(1, b"PENDING"), (2, b"RUNNING")]
    await old_client.close()  # the replica running the task dies

    new_owner, _ = await replica()
    assert await new_owner.last(TASK) == 2  # where it goes on numbering
    await new_owner.publish(TASK, 2, b"RUNNING")  # it cannot know the old one did: stored once
    await new_owner.publish(TASK, 3, b"COMPLETED")
    assert await _next(updates) == [(3, b"COMPLETED")]  # the watch outlived the replica
    await updates.aclose()

    replay = new_owner.follow(TASK)
    assert [number for number, _ in await _next(replay, 3)] == [1, 2, 3]
    await replay.aclose()


async def test_a_follower_that_stops_reading_catches_up_from_the_stream(replica: Open) -> None:
    runner, _ = await replica()
    watcher, _ = await replica(live_backlog=3)
    updates = watcher.follow(TASK)
    await runner.publish(TASK, 1, b"1")
    assert await _next(updates) == [(1, b"1")]
    for number in range(2, 21):  # far more than it holds unread
        await runner.publish(TASK, number, b"%d" % number)
    got = await _next(updates, 19)
    assert [number for number, _ in got] == list(range(2, 21))
    await updates.aclose()


async def test_a_task_nothing_was_published_for_has_no_last_update(replica: Open) -> None:
    log, _ = await replica()
    assert await log.last("unknown") == 0


async def test_options_that_cannot_work_are_refused(nats_server: NatsServer) -> None:
    client = await connect(NatsOptions((nats_server.url,)))
    try:
        with pytest.raises(NatsStoreError, match="update log options"):
            await UpdateLog.open(client, UpdateLogOptions(max_per_task=0))
    finally:
        await client.close()
