"""The shared stores while NATS does not answer: every call says so as the store's own error, never as nats-py's.

A `FaultyConnection` fails the way nats-py fails when a node dies (requests find no responders, publishes a
full buffer), so each call of the task documents, the work queue and the update log is tried against it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import pytest

from tests.faulty_nats import FaultyConnection
from tests.nats_server import NatsServer
from worker_abstraction.errors import StoreUnavailableError
from worker_abstraction.stores.jetstream import (
    NatsUnavailableError,
    TaskDoc,
    TaskDocs,
    TaskDocsOptions,
    UpdateLog,
    UpdateLogOptions,
    WorkQueue,
    WorkQueueOptions,
)

pytestmark = pytest.mark.timeout(60)


@dataclass
class Stores:
    connection: FaultyConnection
    docs: TaskDocs
    queue: WorkQueue
    log: UpdateLog


@pytest.fixture
async def stores(nats_server: NatsServer) -> AsyncIterator[Stores]:
    connection = await FaultyConnection.open(nats_server.url)
    docs = await TaskDocs.open(connection, TaskDocsOptions(answer_timeout_seconds=2))
    queue = await WorkQueue.open(connection, WorkQueueOptions(max_deliveries=1, answer_timeout_seconds=2))
    log = await UpdateLog.open(connection, UpdateLogOptions(answer_timeout_seconds=2))
    yield Stores(connection, docs, queue, log)
    connection.down = False
    await queue.close()
    await log.close()
    await connection.close()


def doc(task_id: str) -> TaskDoc:
    return TaskDoc(task_id=task_id, request=b"\x0a\x03req", capability="noop", accepted_at=time.time())


async def _all(docs: TaskDocs) -> list[TaskDoc]:
    return [found async for found in docs.all()]


async def _first_followed(stores: Stores) -> tuple[int, bytes]:
    updates = stores.log.follow("t1")
    try:
        return await anext(updates)
    finally:
        await updates.aclose()


# Every call of the three stores a daemon makes on its own (its background loops) or for a caller.
CALLS: dict[str, Callable[[Stores], Awaitable[object]]] = {
    "docs.create": lambda s: s.docs.create(doc("t2")),
    "docs.get": lambda s: s.docs.get("t1"),
    "docs.change": lambda s: s.docs.change("t1", lambda d: replace(d, failures=d.failures + 1)),
    "docs.take_over": lambda s: s.docs.take_over("t1", "replica-b", 100),
    "docs.delete": lambda s: s.docs.delete("t1"),
    "docs.claim_key": lambda s: s.docs.claim_key("key-1", "t1"),
    "docs.key_holder": lambda s: s.docs.key_holder("key-1"),
    "docs.put_dead_letter": lambda s: s.docs.put_dead_letter("t1", b"letter"),
    "docs.take_dead_letter": lambda s: s.docs.take_dead_letter("t1"),
    "docs.dead_letters": lambda s: s.docs.dead_letters(),
    "docs.all": lambda s: _all(s.docs),
    "queue.put": lambda s: s.queue.put("noop", "t1"),
    "queue.take": lambda s: s.queue.take("noop", 1, wait_seconds=0.5),
    "queue.exhausted": lambda s: s.queue.exhausted(1, wait_seconds=0.5),
    "queue.remove": lambda s: s.queue.remove(1),
    "log.publish": lambda s: s.log.publish("t1", 1, b"update"),
    "log.last": lambda s: s.log.last("t1"),
    "log.follow": _first_followed,
}


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_a_call_while_nats_does_not_answer_raises_the_stores_unavailable_error(stores: Stores, call: str) -> None:
    await stores.docs.create(doc("t1"))
    await stores.docs.claim_key("key-1", "t1")
    stores.connection.down = True
    with pytest.raises(StoreUnavailableError) as raised:
        await CALLS[call](stores)
    assert isinstance(raised.value, NatsUnavailableError)  # the store's own type, retried as UNAVAILABLE
    assert stores.connection.refused, "the call reached NATS"


async def test_reading_exhausted_work_or_settling_it_while_nats_does_not_answer_raises_the_stores_error(
    stores: Stores,
) -> None:
    queue, connection = stores.queue, stores.connection
    for key in ("t1", "t2"):
        await queue.put("poison", key)
        (lease,) = await queue.take("poison", 1, wait_seconds=2)
        await lease.give_back()  # its one delivery used: asked for more, the server advises it is exhausted
    assert await queue.take("poison", 1, wait_seconds=0.5) == []
    connection.down, connection.publishes_fail = True, False  # an advisory is fetched, its work not read
    with pytest.raises(NatsUnavailableError):
        await queue.exhausted(1, wait_seconds=5)
    assert any(subject.startswith("$JS.API.STREAM.MSG.GET") for subject in connection.refused)

    connection.down = False
    (exhausted,) = await queue.exhausted(1, wait_seconds=5)  # the other one (the first comes back later)
    connection.down, connection.publishes_fail = True, True
    with pytest.raises(NatsUnavailableError):
        await exhausted.settle()
    connection.down = False
    await exhausted.settle()
