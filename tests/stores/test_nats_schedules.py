"""Where schedules are kept: one behaviour over every `ScheduleBook` (memory, SQLite, NATS), then what the NATS
book alone must do (its bucket shared by daemons, names that are not subjects, size bound, outages).

The contract tests take two books that share their schedules: the same `MemoryBook` twice, two
`SqliteScheduleBook`s on one file, two `NatsScheduleBook`s on two connections to one server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from tests.conftest import eventually
from tests.faulty_nats import FaultyConnection
from tests.nats_server import NatsServer
from tests.tcp_proxy import TcpProxy
from worker_abstraction.errors import (
    InvalidParametersError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    StoreUnavailableError,
)
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.schedules.book import Document, MemoryBook, ScheduleBook
from worker_abstraction.stores.jetstream import NatsOptions, NatsUnavailableError, connect
from worker_abstraction.stores.jetstream.schedules import MAX_DOCUMENT_BYTES, NatsScheduleBook
from worker_abstraction.stores.sqlite_schedules import SqliteScheduleBook

pytestmark = pytest.mark.timeout(60)

BOOKS = ("memory", "sqlite", "nats")


@pytest.fixture(params=BOOKS)
async def books(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[ScheduleBook, ScheduleBook]]:
    """Two books on the same schedules (as two daemons sharing a store see them)."""
    if request.param == "memory":
        memory = MemoryBook()
        yield memory, memory
    elif request.param == "sqlite":
        path = str(tmp_path / "tasks.db")
        yield SqliteScheduleBook(path), SqliteScheduleBook(path)
    else:
        server: NatsServer = request.getfixturevalue("nats_server")
        clients = [await connect(NatsOptions((server.url,))) for _ in range(2)]
        opened = [await NatsScheduleBook.open(client) for client in clients]
        yield opened[0], opened[1]
        for book, client in zip(opened, clients, strict=True):
            await book.aclose()
            await client.close()


def definition(name: str, **fields: object) -> Document:
    return {"name": name, "capability": "report", "every_seconds": 60, **fields}


async def names(book: ScheduleBook) -> list[str]:
    return sorted(d["name"] for d, _ in await book.load())


# ---- one behaviour, every book ----------------------------------------------------------------------------------


async def test_a_created_schedule_is_read_back_by_every_book_sharing_it(
    books: tuple[ScheduleBook, ScheduleBook],
) -> None:
    a, b = books
    await a.create("nightly", definition("nightly"), {"fired": 0})
    await a.create("hourly.sync", definition("hourly.sync"), {})
    assert await b.get("nightly") == (definition("nightly"), {"fired": 0})
    assert sorted(await b.load(), key=lambda entry: entry[0]["name"]) == [
        (definition("hourly.sync"), {}),
        (definition("nightly"), {"fired": 0}),
    ]
    assert await b.get("weekly") is None


async def test_a_taken_name_is_refused_and_the_schedule_there_is_kept(
    books: tuple[ScheduleBook, ScheduleBook],
) -> None:
    a, b = books
    await a.create("nightly", definition("nightly"), {"fired": 3})
    with pytest.raises(ScheduleExistsError):
        await b.create("nightly", definition("nightly", every_seconds=5), {})
    assert await a.get("nightly") == (definition("nightly"), {"fired": 3})


async def test_of_two_books_creating_one_name_at_once_exactly_one_wins(
    books: tuple[ScheduleBook, ScheduleBook],
) -> None:
    a, b = books
    for round_ in range(5):
        name = f"race-{round_}"
        outcomes = await asyncio.gather(
            a.create(name, definition(name, by="a"), {"by": "a"}),
            b.create(name, definition(name, by="b"), {"by": "b"}),
            return_exceptions=True,
        )
        winners = [who for who, outcome in zip("ab", outcomes, strict=True) if outcome is None]
        assert len(winners) == 1, outcomes
        assert [type(outcome) for outcome in outcomes if outcome is not None] == [ScheduleExistsError]
        assert await a.get(name) == (definition(name, by=winners[0]), {"by": winners[0]})


async def test_a_definition_is_replaced_and_the_state_kept_and_the_other_way_round(
    books: tuple[ScheduleBook, ScheduleBook],
) -> None:
    a, b = books
    await a.create("nightly", definition("nightly"), {"fired": 0})
    await b.put_definition("nightly", definition("nightly", paused=True))
    await a.put_state("nightly", {"fired": 1})
    assert await b.get("nightly") == (definition("nightly", paused=True), {"fired": 1})


async def test_a_definition_of_no_schedule_or_of_a_removed_one_is_refused_and_stores_nothing(
    books: tuple[ScheduleBook, ScheduleBook],
) -> None:
    a, b = books
    with pytest.raises(ScheduleNotFoundError):
        await a.put_definition("never", definition("never"))
    await a.create("nightly", definition("nightly"), {})
    assert await b.remove("nightly")
    with pytest.raises(ScheduleNotFoundError):
        await a.put_definition("nightly", definition("nightly", paused=True))
    assert await a.load() == [] and await b.get("nightly") is None and await b.get("never") is None


async def test_a_state_noted_after_the_remove_leaves_nothing_to_load(
    books: tuple[ScheduleBook, ScheduleBook],
) -> None:
    a, b = books
    await a.create("nightly", definition("nightly"), {"fired": 0})
    await a.create("hourly", definition("hourly"), {"fired": 0})
    assert await b.remove("nightly")
    await a.put_state("nightly", {"fired": 1})  # (a firing noted by a daemon that had not heard of the removal)
    await a.put_state("never", {"fired": 1})
    assert await names(a) == await names(b) == ["hourly"]
    assert await a.get("nightly") is None and await b.get("never") is None


async def test_a_definition_written_while_the_schedule_is_removed_never_brings_it_back(
    books: tuple[ScheduleBook, ScheduleBook],
) -> None:
    a, b = books
    for round_ in range(20):
        name = f"raced-{round_}"
        await a.create(name, definition(name), {})
        put, removed = await asyncio.gather(
            a.put_definition(name, definition(name, paused=True)), b.remove(name), return_exceptions=True
        )
        assert removed is True and (put is None or isinstance(put, ScheduleNotFoundError)), (put, removed)
        assert await a.get(name) is None and await b.get(name) is None
    assert await a.load() == []


async def test_a_removed_name_is_created_again_with_its_new_definition_and_state(
    books: tuple[ScheduleBook, ScheduleBook],
) -> None:
    a, b = books
    await a.create("nightly", definition("nightly"), {"fired": 7})
    assert await a.remove("nightly")
    await a.put_state("nightly", {"fired": 8})  # (late: must not reach the schedule created next)
    await b.create("nightly", definition("nightly", every_seconds=5), {"fired": 0})
    assert await a.get("nightly") == (definition("nightly", every_seconds=5), {"fired": 0})
    assert await a.load() == [(definition("nightly", every_seconds=5), {"fired": 0})]


async def test_remove_says_whether_there_was_a_schedule_and_of_two_at_once_one_removes_it(
    books: tuple[ScheduleBook, ScheduleBook],
) -> None:
    a, b = books
    assert await a.remove("nightly") is False
    await a.create("nightly", definition("nightly"), {})
    assert sorted(await asyncio.gather(a.remove("nightly"), b.remove("nightly"))) == [False, True]
    assert await b.remove("nightly") is False
    assert await a.load() == []


async def test_every_name_a_schedule_may_have_is_kept_apart(books: tuple[ScheduleBook, ScheduleBook]) -> None:
    a, b = books
    odd = ["a..b", "a.", "a.b", "a_b", "a-b", "A", "9" * 100, "x.y.z"]  # ("a..b", "a." are not NATS subjects)
    for name in odd:
        await a.create(name, definition(name), {"of": name})
    assert await names(b) == sorted(odd)
    for name in odd:
        assert await b.get(name) == (definition(name), {"of": name})
    assert await b.remove("a..b") and await b.remove("a.")
    assert await names(a) == sorted(set(odd) - {"a..b", "a."})
    for never in ("", "no such name", "x" * 5000):  # (names no schedule has, looked up all the same)
        assert await a.get(never) is None and await a.remove(never) is False
        await a.put_state(never, {})
        with pytest.raises(ScheduleNotFoundError):
            await a.put_definition(never, definition(never))


# ---- the NATS book -----------------------------------------------------------------------------------------------


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    connection = await connect(NatsOptions((nats_server.url,)))
    yield connection
    await connection.close()


async def _bucket(client: Client) -> KeyValue:
    return await client.jetstream().key_value("wa_schedules")


async def test_a_definition_over_256_kib_is_refused_and_nothing_is_stored(client: Client) -> None:
    book = await NatsScheduleBook.open(client)
    big = definition("big", description="x" * MAX_DOCUMENT_BYTES)
    with pytest.raises(InvalidParametersError):
        await book.create("big", big, {})
    await book.create("big", definition("big"), {})
    with pytest.raises(InvalidParametersError):
        await book.put_definition("big", big)
    assert await book.load() == [(definition("big"), {})]


async def test_a_definition_deleted_by_hand_frees_its_name_and_a_missing_state_reads_as_empty(client: Client) -> None:
    book = await NatsScheduleBook.open(client)
    kv = await _bucket(client)
    await book.create("nightly", definition("nightly"), {"fired": 2})
    await kv.delete("def.nightly")  # (an operator's `nats kv del`: a DEL marker, not the book's own)
    assert await book.get("nightly") is None and await book.load() == []
    await kv.put("def.nightly", b'{"name":"nightly","capability":"report"}')  # (as if the state write was lost)
    await kv.delete("state.nightly")
    assert await book.get("nightly") == ({"name": "nightly", "capability": "report"}, {})
    assert await book.remove("nightly")
    await book.create("nightly", definition("nightly"), {"fired": 0})
    assert await book.load() == [(definition("nightly"), {"fired": 0})]


async def test_a_state_noted_after_the_remove_leaves_no_key_behind(client: Client) -> None:
    book = await NatsScheduleBook.open(client)
    kv = await _bucket(client)
    await book.create("nightly", definition("nightly"), {"fired": 0})
    assert await book.remove("nightly")
    await book.put_state("nightly", {"fired": 1})
    for key in ("def.nightly", "state.nightly"):
        with pytest.raises(KeyNotFoundError):
            await kv.get(key)


async def test_a_name_that_is_not_text_is_no_schedule_s(client: Client) -> None:
    book = await NatsScheduleBook.open(client)
    name = "no such \ud800"  # (a lone surrogate: no UTF-8, so no key)
    assert await book.get(name) is None and await book.remove(name) is False
    await book.put_state(name, {})
    with pytest.raises(ScheduleNotFoundError):
        await book.put_definition(name, definition("x"))
    with pytest.raises(InvalidParametersError):
        await book.create(name, definition("x"), {})


async def test_a_state_left_without_its_definition_is_never_read_and_a_new_schedule_writes_over_it(
    client: Client,
) -> None:
    book = await NatsScheduleBook.open(client)
    kv = await _bucket(client)
    await kv.put("state.nightly", b'{"fired":99}')  # (a removal cut short)
    assert await book.load() == [] and await book.get("nightly") is None
    await book.create("nightly", definition("nightly"), {"fired": 0})
    assert await book.get("nightly") == (definition("nightly"), {"fired": 0})


async def test_the_partitioned_home_opens_one_book_that_every_daemon_shares(nats_server: NatsServer) -> None:
    options = NatsOptions((nats_server.url,))
    first = await PartitionedHome.open(options, replica="r1", partitions=2)
    second = await PartitionedHome.open(options, replica="r2", partitions=2)
    try:
        book = first.schedule_book()
        assert first.schedule_book() is book and book.shared
        await book.create("nightly", definition("nightly"), {})
        assert await second.schedule_book().get("nightly") == (definition("nightly"), {})
    finally:
        await first.aclose()
        await second.aclose()


Call = Callable[[NatsScheduleBook], Awaitable[object]]
CALLS: dict[str, Call] = {
    "load": lambda book: book.load(),
    "get": lambda book: book.get("nightly"),
    "create": lambda book: book.create("weekly", definition("weekly"), {}),
    "put_definition": lambda book: book.put_definition("nightly", definition("nightly", paused=True)),
    "put_state": lambda book: book.put_state("nightly", {"fired": 1}),
    "remove": lambda book: book.remove("nightly"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_a_call_while_nats_does_not_answer_raises_the_stores_unavailable_error(
    nats_server: NatsServer, call: str
) -> None:
    connection = await FaultyConnection.open(nats_server.url)
    try:
        book = await NatsScheduleBook.open(connection, answer_timeout_seconds=2)
        await book.create("nightly", definition("nightly"), {})
        connection.down = True
        with pytest.raises(StoreUnavailableError) as raised:
            await CALLS[call](book)
        assert isinstance(raised.value, NatsUnavailableError)  # the store's own type, retried as UNAVAILABLE
        assert connection.refused, "the call reached NATS"
    finally:
        connection.down = False
        await connection.close()


async def test_a_book_made_while_nats_does_not_answer_opens_its_bucket_at_its_first_call_that_gets_an_answer(
    nats_server: NatsServer,
) -> None:
    connection = await FaultyConnection.open(nats_server.url)
    try:
        connection.down = True
        book = NatsScheduleBook(connection, answer_timeout_seconds=2)
        with pytest.raises(NatsUnavailableError):
            await book.create("nightly", definition("nightly"), {})
        connection.down = False
        await book.create("nightly", definition("nightly"), {})
        assert await book.load() == [(definition("nightly"), {})]
    finally:
        connection.down = False
        await connection.close()


async def test_a_book_cut_off_from_nats_says_so_and_answers_again_once_nats_is_back(nats_proxy: TcpProxy) -> None:
    connection = await connect(NatsOptions((nats_proxy.url,)))
    try:
        book = await NatsScheduleBook.open(connection, answer_timeout_seconds=1)
        await book.create("nightly", definition("nightly"), {"fired": 0})
        await nats_proxy.cut()
        for call in ("load", "get", "put_state"):
            with pytest.raises(StoreUnavailableError):
                await CALLS[call](book)
        await nats_proxy.restore()

        async def answers() -> bool:
            try:
                return await book.get("nightly") is not None
            except StoreUnavailableError:
                return False

        await eventually(answers, timeout_seconds=20, what="the book answers after NATS came back")
        assert [d["name"] for d, _ in await book.load()] == ["nightly"]
    finally:
        await connection.close()
