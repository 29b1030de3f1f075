"""JetStreamWorkerStore against a real nats-server: writes, compare-and-set races, expiry, two replicas converging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest
from nats.js.api import KeyValueConfig

from tests.conftest import eventually
from tests.nats_server import NatsServer
from worker_abstraction.errors import InvalidWorkerInfoError, StoreUnavailableError
from worker_abstraction.stores.base import WorkerChange, WorkerRecord
from worker_abstraction.stores.jetstream import JetStreamWorkerStore, NatsOptions, NatsStoreError
from worker_abstraction.stores.jetstream.connection import check_server_version, parse_servers
from worker_abstraction.types import WorkerInfo, WorkerState

Open = Callable[..., Awaitable[JetStreamWorkerStore]]


@pytest.fixture
async def open_store(nats_server: NatsServer) -> AsyncIterator[Open]:
    opened: list[JetStreamWorkerStore] = []

    async def open_(key_ttl_seconds: float = 30.0, outage_grace_seconds: float | None = None) -> JetStreamWorkerStore:
        options = NatsOptions((nats_server.url,))
        store = await JetStreamWorkerStore.open(
            options, key_ttl_seconds=key_ttl_seconds, outage_grace_seconds=outage_grace_seconds
        )
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.aclose()


def record(worker_id: str, address: str = "127.0.0.1:7001", *, seen: float | None = None) -> WorkerRecord:
    info = WorkerInfo(worker_id=worker_id, name="w", address=address, tags=("gpu",))
    return WorkerRecord(info=info, last_seen=time.time() if seen is None else seen)


async def test_a_registered_worker_is_read_back_with_its_live_fields(open_store: Open) -> None:
    store = await open_store()
    assert await store.put(record("w/1 odd:id")) is None
    touched = await store.touch("w/1 odd:id", load=3, now=time.time())
    assert touched is not None and touched.load == 3
    got = await store.get("w/1 odd:id")
    assert got is not None and got.info.tags == ("gpu",) and got.load == 3
    assert [r.info.worker_id for r in await store.find_by_address("127.0.0.1:7001")] == ["w/1 odd:id"]
    assert await store.remove("w/1 odd:id") is not None
    assert await store.get("w/1 odd:id") is None
    assert await store.touch("w/1 odd:id", load=0, now=time.time()) is None


async def test_a_second_store_on_the_bucket_sees_every_change_in_order(open_store: Open) -> None:
    a, b = await open_store(), await open_store()
    changes: list[WorkerChange] = []
    b.listen(changes.append)
    await a.put(record("w1"))
    await eventually(lambda: len(changes) == 1, what="B heard of the registration")
    assert changes[0].previous is None and changes[0].registered
    assert await b.touch("w1", load=2, now=time.time()) is not None  # a heartbeat through the other replica
    await eventually(lambda: equals(load_of(a, "w1"), 2), what="A sees B's heartbeat")
    assert await b.remove("w1", reason="evicted: test", evicted=True) is not None
    await eventually(lambda: equals(ids(a), []), what="A sees the eviction")
    left = changes[-1]
    assert left.current is None and left.evicted and left.reason == "evicted: test"


async def equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def ids(store: JetStreamWorkerStore) -> list[str]:
    return sorted(r.info.worker_id for r in await store.all())


async def load_of(store: JetStreamWorkerStore, worker_id: str) -> int | None:
    record = await store.get(worker_id)
    return record.load if record is not None else None


async def state_of(store: JetStreamWorkerStore, worker_id: str) -> WorkerState | None:
    record = await store.get(worker_id)
    return record.state if record is not None else None


async def test_a_stale_suspect_verdict_never_overwrites_a_fresh_heartbeat(open_store: Open) -> None:
    a, b = await open_store(), await open_store()
    await a.put(record("w1", seen=time.time() - 10))
    await eventually(lambda: equals(ids(b), ["w1"]), what="B loaded the worker")
    # A heartbeat lands through A while B still judges the old record.
    assert await a.touch("w1", load=0, now=time.time()) is not None
    verdict = await b.mark_suspect("w1", reason="no heartbeat", seen_before=time.time() - 5)
    if verdict is not None:  # B's watch had already delivered the heartbeat: then it must not judge it
        raise AssertionError(f"stale verdict applied: {verdict}")
    got = await a.get("w1")
    assert got is not None and got.state is WorkerState.ACTIVE


async def test_a_suspect_verdict_on_a_silent_worker_is_seen_by_both(open_store: Open) -> None:
    a, b = await open_store(), await open_store()
    await a.put(record("w1", seen=time.time() - 10))
    await eventually(lambda: equals(ids(b), ["w1"]), what="B loaded the worker")
    assert await b.mark_suspect("w1", reason="no heartbeat", seen_before=time.time() - 5) is not None
    await eventually(lambda: equals(state_of(a, "w1"), WorkerState.SUSPECT), what="A sees SUSPECT")
    assert await a.mark_suspect("w1", reason="again", seen_before=time.time()) is None  # already SUSPECT


async def test_of_two_replicas_evicting_one_worker_only_one_removes_it(open_store: Open) -> None:
    a, b = await open_store(), await open_store()
    await a.put(record("w1"))
    await eventually(lambda: equals(ids(b), ["w1"]), what="B loaded the worker")
    results = [await a.remove("w1", evicted=True), await b.remove("w1", evicted=True)]
    assert sum(r is not None for r in results) == 1


async def test_a_worker_no_registry_heartbeats_expires_from_the_bucket(open_store: Open) -> None:
    a, b = await open_store(key_ttl_seconds=1, outage_grace_seconds=0), await open_store(key_ttl_seconds=1)
    changes: list[WorkerChange] = []
    b.listen(changes.append)
    await a.put(record("w1"))
    await eventually(lambda: equals(ids(b), ["w1"]), what="B loaded the worker")
    await eventually(lambda: equals(ids(b), []), timeout_seconds=8, what="the key expired")
    assert changes[-1].current is None and changes[-1].evicted and "expired" in changes[-1].reason


async def test_a_store_opened_later_loads_the_workers_already_there(open_store: Open) -> None:
    a = await open_store()
    await a.put(record("w1"))
    await a.put(record("w2", "127.0.0.1:7002"))
    b = await open_store()
    assert await ids(b) == ["w1", "w2"]


def test_servers_older_than_2_11_are_refused_by_name() -> None:
    check_server_version("2.11.0")
    check_server_version("v2.15.1")
    with pytest.raises(NatsStoreError, match=r"2\.10\.22 is too old.*>= 2\.11"):
        check_server_version("2.10.22")


def test_store_urls_are_checked() -> None:
    assert parse_servers("nats://a:4222, tls://b:4223") == ("nats://a:4222", "tls://b:4223")
    for bad in ("", "a:4222", "http://a:1", "nats://a"):
        with pytest.raises(NatsStoreError):
            parse_servers(bad)


async def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(NatsStoreError, match="cannot connect to NATS"):
        await JetStreamWorkerStore.open(
            NatsOptions(("nats://127.0.0.1:1",), connect_timeout_seconds=1), key_ttl_seconds=5
        )


async def test_hostile_ids_are_unknown_workers_not_errors(open_store: Open) -> None:
    store = await open_store()
    for worker_id in ("", "x" * 100_000, "\x00\udcff".encode(errors="surrogatepass").decode(errors="replace"), ">*"):
        assert await store.get(worker_id) is None
        assert await store.touch(worker_id, load=0, now=time.time()) is None
        assert await store.remove(worker_id) is None
        assert await store.mark_suspect(worker_id, reason="", seen_before=time.time()) is None


async def test_a_registration_over_the_servers_max_payload_is_refused_as_invalid(open_store: Open) -> None:
    store = await open_store()
    huge = WorkerRecord(info=WorkerInfo(worker_id="w1", name="w", address="a:1", tags=("t" * 2_000_000,)), last_seen=0)
    with pytest.raises(InvalidWorkerInfoError, match="max_payload"):
        await store.put(huge)
    assert await store.get("w1") is None


async def test_a_lost_nats_server_makes_writes_unavailable_not_internal_errors(
    open_store: Open, nats_server: NatsServer
) -> None:
    store = await open_store()
    await store.put(record("w1"))
    nats_server.stop()
    with pytest.raises(StoreUnavailableError):  # (the registry answers UNAVAILABLE: the worker retries)
        await store.touch("w1", load=1, now=time.time())


async def test_an_eviction_spares_a_worker_heard_from_since_the_sweep_looked(open_store: Open) -> None:
    a, b = await open_store(), await open_store()
    await a.put(record("w1", seen=time.time() - 60))
    await eventually(lambda: equals(ids(b), ["w1"]), what="B loaded the worker")
    judged_at = time.time() - 30
    assert await a.touch("w1", load=0, now=time.time()) is not None  # the heartbeat lands first
    assert await b.remove("w1", evicted=True, seen_before=judged_at) is None
    assert await ids(a) == ["w1"]


async def test_a_bucket_made_without_per_key_ttl_is_refused(nats_server: NatsServer) -> None:
    client = await nats.connect(nats_server.url)
    try:
        await client.jetstream().create_key_value(KeyValueConfig(bucket="wa_workers", history=1))
        with pytest.raises(NatsStoreError, match="without per-message TTL"):
            await JetStreamWorkerStore.open(NatsOptions((nats_server.url,)), key_ttl_seconds=5)
    finally:
        await client.close()


async def test_racing_heartbeats_and_verdicts_always_end_active(open_store: Open) -> None:
    a, b = await open_store(), await open_store()
    workers = [f"w{i:02}" for i in range(20)]
    for i, worker_id in enumerate(workers):
        await a.put(record(worker_id, f"127.0.0.1:{7000 + i}", seen=time.time() - 60))
    await eventually(lambda: equals(ids(b), workers), what="B loaded every worker")
    judged = time.time() - 30
    await asyncio.gather(
        *(a.touch(w, load=1, now=time.time()) for w in workers),
        *(b.mark_suspect(w, reason="no heartbeat", seen_before=judged) for w in workers),
    )
    for store in (a, b):
        await eventually(
            lambda store=store: equals(states(store), {WorkerState.ACTIVE}), what="every worker ACTIVE everywhere"
        )


async def states(store: JetStreamWorkerStore) -> set[WorkerState]:
    return {r.state for r in await store.all()}
