"""Task documents against a real nats-server: created once, changed by compare-and-set, fenced by their holder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
from nats.aio.client import Client

from tests.nats_server import NatsServer
from worker_abstraction.errors import TaskExistsError
from worker_abstraction.stores.jetstream import NatsOptions, NatsStoreError, connect
from worker_abstraction.stores.jetstream.tasks import (
    DISPATCHED,
    FINISHED,
    StaleHolderError,
    TaskDoc,
    TaskDocs,
)

Open = Callable[[], Awaitable[TaskDocs]]
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def replica(nats_server: NatsServer) -> AsyncIterator[Open]:
    """A replica's view of the documents: its own connection, as a separate daemon has."""
    clients: list[Client] = []

    async def open_() -> TaskDocs:
        client = await connect(NatsOptions((nats_server.url,)))
        clients.append(client)
        return await TaskDocs.open(client)

    yield open_
    for client in clients:
        await client.close()


def doc(task_id: str, **changes: object) -> TaskDoc:
    made = TaskDoc(task_id=task_id, request=b"\x0a\x03req", capability="noop", accepted_at=time.time(), reserved=3)
    return replace(made, **changes)  # type: ignore[arg-type]


async def test_a_document_is_created_once_and_read_back_from_another_replica(replica: Open) -> None:
    a, b = await replica(), await replica()
    odd = "task/ with.odd*chars>é"
    revision = await a.create(doc(odd, owner="client/alice"))
    with pytest.raises(TaskExistsError):
        await b.create(doc(odd))
    found = await b.get(odd)
    assert found is not None
    read, read_revision = found
    assert (read.task_id, read.request, read.owner, read.reserved, read_revision) == (
        odd,
        b"\x0a\x03req",
        "client/alice",
        3,
        revision,
    )
    assert await b.get("no such task") is None
    assert [d.task_id async for d in b.all()] == [odd]


async def test_concurrent_changes_from_two_replicas_all_land(replica: Open) -> None:
    a, b = await replica(), await replica()
    await a.create(doc("t1"))

    def one_more_failure(current: TaskDoc) -> TaskDoc:
        return replace(current, failures=current.failures + 1)

    await asyncio.gather(*(store.change("t1", one_more_failure) for store in (a, b) for _ in range(10)))
    found = await a.get("t1")
    assert found is not None and found[0].failures == 20


async def test_of_two_replicas_finishing_a_task_at_once_exactly_one_does(replica: Open) -> None:
    a, b = await replica(), await replica()
    await a.create(doc("t1", state=DISPATCHED))

    def finish_as(replica_name: str) -> Callable[[TaskDoc], TaskDoc | None]:
        def finish(current: TaskDoc) -> TaskDoc | None:
            if current.finished:
                return None  # somebody finished it: this outcome is not the task's
            return replace(current, state=FINISHED, record=replica_name.encode(), status=3)

        return finish

    results = await asyncio.gather(a.change("t1", finish_as("a")), b.change("t1", finish_as("b")))
    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    found = await a.get("t1")
    assert found is not None and found[0].record == winners[0].record


async def test_a_replica_that_lost_the_task_to_another_can_no_longer_change_it(replica: Open) -> None:
    a, b = await replica(), await replica()
    await a.create(doc("t1"))
    held = await a.take_over("t1", "replica-a", block=3)
    assert held is not None and (held.doc.holder, held.doc.reserved, held.sent_up_to) == ("replica-a", 3, 0)
    await a.change("t1", lambda d: replace(d, state=DISPATCHED, attempt=2), holder="replica-a")

    taken = await b.take_over("t1", "replica-b", block=3)  # replica-a's lease ran out
    assert taken is not None and taken.doc.holder == "replica-b"
    assert (taken.sent_up_to, taken.doc.reserved) == (3, 6)  # above every number replica-a may have sent
    with pytest.raises(StaleHolderError, match="held by 'replica-b' now"):
        await a.change("t1", lambda d: replace(d, state=FINISHED), holder="replica-a")
    finished = await b.change("t1", lambda d: replace(d, state=FINISHED, status=3), holder="replica-b")
    assert finished is not None and finished.finished
    assert await a.take_over("t1", "replica-a", block=3) is None  # a finished task is not taken over


async def test_an_idempotency_key_is_claimed_by_one_task_only(replica: Open) -> None:
    a, b = await replica(), await replica()
    claims = await asyncio.gather(a.claim_key("order-42", "task-a"), b.claim_key("order-42", "task-b"))
    assert claims[0] == claims[1] and claims[0] in {"task-a", "task-b"}
    assert await a.claim_key("order-43", "task-c") == "task-c"


async def test_a_damaged_document_is_reported_as_such_not_as_a_crash(replica: Open, nats_server: NatsServer) -> None:
    docs = await replica()
    await docs.create(doc("t1"))
    client = await connect(NatsOptions((nats_server.url,)))
    try:
        kv = await client.jetstream().key_value("wa_tasks")
        await kv.put("dDE", b"{not json")  # the key of "t1"
    finally:
        await client.close()
    with pytest.raises(NatsStoreError, match="'t1' is unreadable"):
        await docs.get("t1")
    assert [d.task_id async for d in docs.all()] == []  # a listing skips it (and logs it)
