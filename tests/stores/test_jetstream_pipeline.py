"""The pipelined JetStream writer against a real nats-server: writes made together share a batch and each
gets its own answer (an ack, a lost compare-and-set, a refusal), in order per subject; an outage or a close
fails the writes waiting for an answer, never leaves them hanging."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.kv import KeyValue

from tests.nats_server import NatsServer
from worker_abstraction.stores.jetstream import NatsOptions, NatsStoreError, NatsUnavailableError, connect
from worker_abstraction.stores.jetstream.pipeline import (
    Ack,
    JetStreamWriter,
    WriteRejectedError,
    WriterFullError,
    WriterOptions,
    WrongLastSequenceError,
    kv_subject,
)
from worker_abstraction.stores.jetstream.wire import outcome

pytestmark = pytest.mark.timeout(60)
BUCKET = "pipe_kv"
STREAM = "PIPE"


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await connect(NatsOptions((nats_server.url,)), name="wa-test-pipeline")
    js = client.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=["pipe.>"], duplicate_window=60))
    yield client
    await client.close()


@pytest.fixture
async def kv(client: Client) -> KeyValue:
    return await client.jetstream().create_key_value(KeyValueConfig(bucket=BUCKET, history=1))


@pytest.fixture
async def writer(client: Client) -> AsyncIterator[JetStreamWriter]:
    async with await JetStreamWriter.open(client, WriterOptions(ack_timeout_seconds=5)) as writer:
        yield writer


async def _freeze(server: NatsServer) -> None:
    """Stop the server's process (SIGSTOP) and return once it is stopped: it answers nothing from then on."""
    server.process.send_signal(signal.SIGSTOP)
    # a signal is delivered some time after kill() returns; waitpid(WUNTRACED) returns once the process stopped
    await asyncio.to_thread(os.waitpid, server.process.pid, os.WUNTRACED)


async def _settled(*futures: asyncio.Future[Ack]) -> list[Ack | BaseException]:
    async with asyncio.timeout(10):
        return await asyncio.gather(*futures, return_exceptions=True)


async def test_writes_made_together_are_all_stored_in_the_order_they_were_made(writer: JetStreamWriter) -> None:
    futures = [writer.write(f"pipe.task{i % 7}", f"update {i}".encode()) for i in range(1000)]
    assert writer.pending == 1000
    acks = await _settled(*futures)
    assert all(isinstance(ack, Ack) and ack.stream == STREAM and not ack.duplicate for ack in acks)
    assert [ack.seq for ack in acks if isinstance(ack, Ack)] == list(range(1, 1001))
    assert writer.pending == 0


async def test_sent_writes_are_stored_unacknowledged_between_the_acknowledged_ones_in_order(
    client: Client, writer: JetStreamWriter
) -> None:
    first = writer.write("pipe.mixed", b"first")
    for n in range(5):
        writer.send("pipe.mixed", f"sent {n}".encode(), msg_id=f"mixed:{n}")
    writer.send("pipe.mixed", b"sent 0 again", msg_id="mixed:0")  # (its msg_id stored already: not stored)
    last = writer.write("pipe.mixed", b"last")
    acks = await _settled(first, last)
    assert [ack.seq for ack in acks if isinstance(ack, Ack)] == [1, 7]  # (the duplicate was not stored)
    assert writer.pending == 0
    js = client.jetstream()
    stored = [(await js.get_msg(STREAM, seq)).data for seq in (1, 2, 3, 4, 5, 6, 7)]
    assert stored == [b"first", *(f"sent {n}".encode() for n in range(5)), b"last"]


async def test_a_write_larger_than_nats_takes_fails_alone_and_the_connection_stays(
    client: Client, writer: JetStreamWriter
) -> None:
    too_large = b"x" * (client.max_payload + 1)
    before = writer.write("pipe.big", b"before")
    large = writer.write("pipe.big", too_large)
    writer.send("pipe.big", too_large)  # (dropped, unsent)
    after = writer.write("pipe.big", b"after")
    outcomes = await _settled(before, large, after)
    assert isinstance(outcomes[1], NatsStoreError) and "bytes, NATS takes" in str(outcomes[1])
    assert [ack.seq for ack in (outcomes[0], outcomes[2]) if isinstance(ack, Ack)] == [1, 2]
    assert client.is_connected and client.stats["reconnects"] == 0


async def test_batches_beyond_max_batch_are_stored_in_order_too(client: Client) -> None:
    async with await JetStreamWriter.open(client, WriterOptions(max_batch=10)) as writer:
        acks = await _settled(*(writer.write("pipe.one", str(i).encode()) for i in range(95)))
    assert [ack.seq for ack in acks if isinstance(ack, Ack)] == list(range(1, 96))


async def test_compare_and_sets_to_one_key_in_one_batch_keep_their_order(writer: JetStreamWriter, kv: KeyValue) -> None:
    first = await writer.kv_create(BUCKET, "counter", b"0")
    # each expects the revision the one before it makes: they succeed only if stored one after the other
    futures = [
        writer.write(kv_subject(BUCKET, "counter"), str(i).encode(), expected_last_subject_sequence=first + i - 1)
        for i in range(1, 51)
    ]
    acks = await _settled(*futures)
    assert [ack.seq for ack in acks if isinstance(ack, Ack)] == list(range(first + 1, first + 51))
    entry = await kv.get("counter")
    assert (entry.value, entry.revision) == (b"50", first + 50)


async def test_a_lost_compare_and_set_fails_alone_with_its_own_error(writer: JetStreamWriter, kv: KeyValue) -> None:
    revision = await writer.kv_create(BUCKET, "doc", b"v1")
    others = [writer.kv_create(BUCKET, f"other.{i}", b"x") for i in range(20)]
    winner = writer.kv_update(BUCKET, "doc", b"v2 from a", revision)
    loser = writer.kv_update(BUCKET, "doc", b"v2 from b", revision)
    results = await asyncio.wait_for(asyncio.gather(winner, loser, *others, return_exceptions=True), 10)
    assert isinstance(results[0], int)
    assert isinstance(results[1], WrongLastSequenceError)
    assert isinstance(results[1], NatsStoreError)
    assert all(isinstance(result, int) for result in results[2:])
    entry = await kv.get("doc")
    assert (entry.value, entry.revision) == (b"v2 from a", results[0])


async def test_creating_a_key_twice_fails_as_existing_and_keeps_the_first_value(
    writer: JetStreamWriter, kv: KeyValue
) -> None:
    first, second = await asyncio.gather(
        writer.kv_create(BUCKET, "once", b"first"), writer.kv_create(BUCKET, "once", b"second"), return_exceptions=True
    )
    assert isinstance(first, int)
    assert isinstance(second, WrongLastSequenceError)
    assert (await kv.get("once")).value == b"first"


async def test_a_deleted_or_purged_key_may_be_created_again(writer: JetStreamWriter, kv: KeyValue) -> None:
    await writer.kv_create(BUCKET, "deleted", b"old")
    await writer.kv_create(BUCKET, "purged", b"old")
    await kv.delete("deleted")
    await kv.purge("purged")
    for key in ("deleted", "purged"):
        revision = await writer.kv_create(BUCKET, key, b"new")
        entry = await kv.get(key)
        assert (entry.value, entry.revision) == (b"new", revision)


async def test_values_written_read_back_through_nats_py_exactly(writer: JetStreamWriter, kv: KeyValue) -> None:
    values = {f"task/{i}=a_b-c.d": bytes(range(i % 256)) * 3 for i in range(37, 600, 37)}
    created = dict(
        zip(values, await asyncio.gather(*(writer.kv_create(BUCKET, k, v) for k, v in values.items())), strict=True)
    )
    for key, value in values.items():
        entry = await kv.get(key)
        assert (entry.value, entry.revision) == (value, created[key])
    updated = await writer.kv_update(BUCKET, "task/37=a_b-c.d", b"", created["task/37=a_b-c.d"])
    entry = await kv.get("task/37=a_b-c.d")
    assert (entry.value, entry.revision) == (None, updated)  # (nats-py reads an empty value as None)


async def test_a_message_id_seen_before_is_acknowledged_as_a_duplicate(writer: JetStreamWriter) -> None:
    first = await writer.write("pipe.dup", b"a", msg_id="task-1:1")
    again, other = await _settled(writer.write("pipe.dup", b"a", msg_id="task-1:1"), writer.write("pipe.dup", b"b"))
    assert not first.duplicate
    assert again == Ack(STREAM, first.seq, duplicate=True)
    assert isinstance(other, Ack)
    assert other.seq == first.seq + 1


async def test_a_write_jetstream_refuses_fails_with_the_servers_reason(writer: JetStreamWriter) -> None:
    refused, stored = await _settled(
        writer.write("pipe.x", b"a", headers={"Nats-Expected-Stream": "NOT_PIPE"}), writer.write("pipe.x", b"b")
    )
    assert isinstance(refused, WriteRejectedError)
    assert not isinstance(refused, WrongLastSequenceError)
    assert refused.code == 400
    assert refused.description
    assert isinstance(stored, Ack)


async def test_a_subject_no_stream_listens_on_fails_as_unavailable(writer: JetStreamWriter) -> None:
    (result,) = await _settled(writer.write("nowhere.x", b"a"))
    assert isinstance(result, NatsUnavailableError)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b'{"stream":"S","seq":7}', Ack("S", 7)),
        (b'{"stream":"S","seq":7,"duplicate": true}', Ack("S", 7, duplicate=True)),
        (b'{"stream":"S","seq":7,"duplicate":true}', Ack("S", 7, duplicate=True)),
        (b'{"stream":"S","domain":"hub","seq":7}', Ack("S", 7)),
        (b'{ "seq": 7, "stream": "S" }', Ack("S", 7)),
    ],
)
def test_an_acknowledgement_reads_the_same_however_the_server_spells_it(answer: bytes, expected: Ack) -> None:
    client = Client()
    assert outcome("s.x", Msg(client, "_INBOX.x.1", data=answer)) == expected
    assert isinstance(outcome("s.x", Msg(client, "_INBOX.x.1", data=b"{not json")), NatsStoreError)


async def test_a_bad_bucket_or_key_is_refused_before_anything_is_sent(writer: JetStreamWriter) -> None:
    with pytest.raises(NatsStoreError):
        await writer.kv_create(BUCKET, "a key with spaces", b"")
    with pytest.raises(NatsStoreError):
        await writer.kv_update("bad.bucket", "key", b"", 1)


async def test_an_acknowledgement_that_never_comes_fails_the_write_after_the_ack_timeout(client: Client) -> None:
    arrived = asyncio.Event()

    async def swallow(msg: Msg) -> None:  # a responder that answers nothing
        arrived.set()

    await client.subscribe("silent.x", cb=swallow)
    async with await JetStreamWriter.open(client, WriterOptions(ack_timeout_seconds=0.5)) as writer:
        future = writer.write("silent.x", b"a")
        stored = writer.write("pipe.x", b"b")
        async with asyncio.timeout(5):
            await arrived.wait()
            assert isinstance(await stored, Ack)
            with pytest.raises(NatsUnavailableError):
                await future
        assert writer.pending == 0


async def test_closing_fails_the_writes_still_waiting(client: Client) -> None:
    arrived = asyncio.Event()

    async def swallow(msg: Msg) -> None:
        arrived.set()

    await client.subscribe("silent.x", cb=swallow)
    writer = await JetStreamWriter.open(client, WriterOptions(ack_timeout_seconds=30))
    sent = writer.write("silent.x", b"a")
    async with asyncio.timeout(5):
        await arrived.wait()
    queued = writer.write("pipe.x", b"b")
    await writer.aclose()
    for future in (sent, queued):
        assert future.done()
        with pytest.raises(NatsUnavailableError):
            await future
    after = writer.write("pipe.x", b"c")
    with pytest.raises(NatsUnavailableError):
        await after
    assert writer.pending == 0


async def test_a_write_beyond_max_pending_fails_at_once(client: Client) -> None:
    async with await JetStreamWriter.open(client, WriterOptions(max_pending=3)) as writer:
        futures = [writer.write("pipe.x", b"a") for _ in range(4)]
        assert futures[3].done()
        with pytest.raises(WriterFullError):
            await futures[3]
        assert all(isinstance(ack, Ack) for ack in await _settled(*futures[:3]))
        assert isinstance(await writer.write("pipe.x", b"room again"), Ack)


async def test_a_full_batch_goes_out_without_waiting_for_the_delay(client: Client) -> None:
    options = WriterOptions(max_batch=4, max_delay_seconds=30)
    async with await JetStreamWriter.open(client, options) as writer:
        acks = await _settled(*(writer.write("pipe.x", b"a") for _ in range(4)))  # (within 10 s: not 30)
    assert all(isinstance(ack, Ack) for ack in acks)


async def test_a_short_delay_sends_a_batch_that_never_fills(client: Client) -> None:
    async with await JetStreamWriter.open(client, WriterOptions(max_batch=100, max_delay_seconds=0.01)) as writer:
        acks = await _settled(writer.write("pipe.x", b"a"), writer.write("pipe.x", b"b"))
    assert [ack.seq for ack in acks if isinstance(ack, Ack)] == [1, 2]


async def test_a_cancelled_write_is_not_sent(client: Client, writer: JetStreamWriter) -> None:
    cancelled = writer.write("pipe.x", b"never")
    cancelled.cancel()
    ack = await writer.write("pipe.x", b"stored")
    assert ack.seq == 1


async def test_a_server_that_stops_answering_fails_the_waiting_writes_after_the_ack_timeout(
    nats_server: NatsServer, client: Client
) -> None:
    async with await JetStreamWriter.open(client, WriterOptions(ack_timeout_seconds=1)) as writer:
        assert isinstance(await writer.write("pipe.x", b"before"), Ack)
        try:
            await _freeze(nats_server)  # the connection stays up; nothing answers
            futures = [writer.write(f"pipe.{i}", b"a") for i in range(50)]
            results = await _settled(*futures)
        finally:
            nats_server.process.send_signal(signal.SIGCONT)
    assert all(isinstance(result, NatsUnavailableError) for result in results)


async def test_a_lost_connection_fails_the_waiting_writes_well_before_the_ack_timeout(
    nats_server: NatsServer, client: Client
) -> None:
    async with await JetStreamWriter.open(client, WriterOptions(ack_timeout_seconds=60)) as writer:
        assert isinstance(await writer.write("pipe.x", b"before"), Ack)
        await _freeze(nats_server)
        sent_before = client.stats["out_msgs"]
        futures = [writer.write(f"pipe.{i}", b"a") for i in range(50)]
        await asyncio.sleep(0)  # one turn of the loop: the writer sends the batch (checked, not hoped for)
        assert client.stats["out_msgs"] == sent_before + 50
        nats_server.process.kill()
        await asyncio.to_thread(nats_server.process.wait, 10)
        results = await _settled(*futures)  # (within 10 s: not 60)
        assert all(isinstance(result, NatsUnavailableError) for result in results)
        later = writer.write("pipe.x", b"while down")
        with pytest.raises(NatsUnavailableError):
            await asyncio.wait_for(later, 10)


async def test_a_closed_connection_fails_writes_at_once(client: Client) -> None:
    writer = await JetStreamWriter.open(client)
    await client.close()
    with pytest.raises(NatsUnavailableError):
        await asyncio.wait_for(writer.write("pipe.x", b"a"), 10)
    await writer.aclose()
