"""The shared stores while NATS does not answer: every call says so as the store's own error, never as nats-py's.

A `FaultyConnection` fails the way nats-py fails when a node dies (requests find no responders, publishes a
full buffer), so each call of the update log and the partitioned home's store (its documents, keys, dead
letters and writer) is tried against it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import pytest

from tests.faulty_nats import FaultyConnection
from tests.nats_server import NatsServer
from worker_abstraction.errors import StoreUnavailableError
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStore, PartitionedStoreOptions
from worker_abstraction.stores.jetstream import NatsUnavailableError, TaskDoc, UpdateLog, UpdateLogOptions
from worker_abstraction.stores.jetstream.tasks import FINISHED

pytestmark = pytest.mark.timeout(60)


@dataclass
class Stores:
    connection: FaultyConnection
    log: UpdateLog
    partitioned: PartitionedStore


@pytest.fixture
async def stores(nats_server: NatsServer) -> AsyncIterator[Stores]:
    connection = await FaultyConnection.open(nats_server.url)
    log = await UpdateLog.open(connection, UpdateLogOptions(answer_timeout_seconds=2))
    partitioned = await PartitionedStore.open(
        connection,
        PartitionedStoreOptions(
            partitions=4, answer_timeout_seconds=2, updates=UpdateLogOptions(answer_timeout_seconds=2)
        ),
    )
    yield Stores(connection, log, partitioned)
    connection.down = False
    await partitioned.aclose()
    await log.close()
    await connection.close()


def doc(task_id: str) -> TaskDoc:
    return TaskDoc(task_id=task_id, request=b"\x0a\x03req", capability="noop", accepted_at=time.time())


def ended(task_id: str) -> TaskDoc:
    return replace(doc(task_id), state=FINISHED, record=b"\x0a\x02t1")


async def _first_followed(log: UpdateLog) -> tuple[int, bytes]:
    updates = log.follow("t1")
    try:
        return await anext(updates)
    finally:
        await updates.aclose()


async def _scanned(store: PartitionedStore) -> None:
    await store.scan_partition(store.partition("t1"), lambda _: None)


# Every call of the stores a daemon makes on its own (its background loops) or for a caller.
CALLS: dict[str, Callable[[Stores], Awaitable[object]]] = {
    "log.publish": lambda s: s.log.publish("t1", 1, b"update"),
    "log.last": lambda s: s.log.last("t1"),
    "log.follow": lambda s: _first_followed(s.log),
    "partitioned.create_doc": lambda s: s.partitioned.create_doc(doc("t2")),
    "partitioned.create_doc(chosen)": lambda s: s.partitioned.create_doc(doc("t2"), chosen=True),
    "partitioned.update_doc": lambda s: s.partitioned.update_doc(replace(doc("t1"), failures=1), 1),
    "partitioned.get": lambda s: s.partitioned.get("t1"),
    "partitioned.get_finished": lambda s: s.partitioned.get_finished("t1"),
    "partitioned.finish_doc": lambda s: s.partitioned.finish_doc(ended("t1")),
    "partitioned.purge_finished": lambda s: s.partitioned.purge_finished("t1", 1),
    "partitioned.move_finished": lambda s: s.partitioned.move_finished(ended("t1"), 1),
    "partitioned.delete": lambda s: s.partitioned.delete("t1"),
    "partitioned.all_docs": lambda s: s.partitioned.all_docs(),
    "partitioned.scan_partition": lambda s: _scanned(s.partitioned),
    "partitioned.probe": lambda s: s.partitioned.probe(timeout_seconds=2),
    "partitioned.claim_key": lambda s: s.partitioned.letters.claim_key("key-2", "t2"),
    "partitioned.letters.key_holder": lambda s: s.partitioned.letters.key_holder("key-1"),
    "partitioned.letters.take_dead_letter": lambda s: s.partitioned.letters.take_dead_letter("t1"),
    "partitioned.letters.dead_letters": lambda s: s.partitioned.letters.dead_letters(),
    "partitioned.put_dead_letter": lambda s: s.partitioned.letters.put_dead_letter("t1", b"letter"),
    "partitioned.log.last": lambda s: s.partitioned.log.last("t1"),
    "partitioned.log.follow": lambda s: _first_followed(s.partitioned.log),
}


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_a_call_while_nats_does_not_answer_raises_the_stores_unavailable_error(stores: Stores, call: str) -> None:
    await stores.partitioned.create_doc(doc("t1"))
    await stores.partitioned.letters.claim_key("key-1", "t1")
    stores.connection.down = True
    with pytest.raises(StoreUnavailableError) as raised:
        await CALLS[call](stores)
    assert isinstance(raised.value, NatsUnavailableError)  # the store's own type, retried as UNAVAILABLE
    assert stores.connection.refused, "the call reached NATS"
