"""Task documents on a real nats-server, as the partitioned home's store keeps them: an id is created once and
a document read back from another daemon; an idempotency key is claimed by one task only; a damaged
document is reported as such, not as a crash, and a listing skips it; a document written by a newer version
(fields this one does not know) still reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
from nats.aio.client import Client

from tests.nats_server import NatsServer
from worker_abstraction.errors import TaskExistsError
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStore, PartitionedStoreOptions
from worker_abstraction.stores.jetstream import NatsOptions, NatsStoreError, connect
from worker_abstraction.stores.jetstream.tasks import DISPATCHED, TaskDoc, decode_doc, encode_doc

Open = Callable[[], Awaitable[PartitionedStore]]
pytestmark = pytest.mark.timeout(60)
OPTIONS = PartitionedStoreOptions(partitions=4)


@pytest.fixture
async def replica(nats_server: NatsServer) -> AsyncIterator[Open]:
    """A daemon's view of the documents: its own connection, as a separate daemon has."""
    clients: list[Client] = []
    stores: list[PartitionedStore] = []

    async def open_() -> PartitionedStore:
        client = await connect(NatsOptions((nats_server.url,)))
        clients.append(client)
        store = await PartitionedStore.open(client, OPTIONS)
        stores.append(store)
        return store

    yield open_
    for store in stores:
        await store.aclose()
    for client in clients:
        await client.close()


def doc(task_id: str, **changes: object) -> TaskDoc:
    made = TaskDoc(task_id=task_id, request=b"\x0a\x03req", capability="noop", accepted_at=time.time(), reserved=3)
    return replace(made, **changes)  # type: ignore[arg-type]


async def test_a_document_is_created_once_and_read_back_from_another_daemon(replica: Open) -> None:
    a, b = await replica(), await replica()
    revision = await a.create_doc(doc("t1", holder="a#1"))
    with pytest.raises(TaskExistsError):
        await b.create_doc(doc("t1", holder="b#1"))
    sent = replace(doc("t1", holder="a#1"), state=DISPATCHED, worker_id="w1", attempt=1)
    await a.update_doc(sent, revision)
    found = await b.get("t1")
    assert found is not None
    assert found[0].holder == "a#1" and found[0].state == DISPATCHED and found[0].request == b"\x0a\x03req"


async def test_an_idempotency_key_is_claimed_by_one_task_only(replica: Open) -> None:
    a, b = await replica(), await replica()
    claims = await asyncio.gather(a.letters.claim_key("order-42", "task-a"), b.letters.claim_key("order-42", "task-b"))
    assert claims[0] == claims[1] and claims[0] in {"task-a", "task-b"}
    assert await a.letters.key_holder("order-42") == claims[0]
    assert await a.letters.claim_key("order-43", "task-c") == "task-c"


async def test_a_damaged_document_is_reported_as_such_not_as_a_crash(replica: Open) -> None:
    store = await replica()
    await store.create_doc(doc("t1"))
    kv = await store.client.jetstream().key_value(OPTIONS.docs_bucket)
    await kv.put(store.doc_key("t1"), b"{not json")
    with pytest.raises(NatsStoreError, match="'t1' is unreadable"):
        await store.get("t1")
    await store.create_doc(doc("t2"))
    assert [d.task_id for d in await store.all_docs()] == ["t2"]  # a listing skips it (and logs it)


def test_a_document_from_a_newer_version_reads_and_bytes_round_trip() -> None:
    written = doc("t3", record=b"\x00\xff", takes=2, released=True)
    assert decode_doc(encode_doc(written)) == written
    newer = encode_doc(written).replace(b'{"task_id"', b'{"unknown_field":[1,2],"task_id"')
    assert decode_doc(newer) == written
    with pytest.raises(ValueError):
        decode_doc(b"[1, 2]")
