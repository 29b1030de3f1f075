"""PartitionLeases on a real nats-server: every replica's gains and losses are recorded in the order they
happen (all replicas share one event loop, so that order is the real one), and no test sleeps to wait:
each awaits the events it expects, within a bound."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import nats
import pytest
from nats.aio.client import Client

from tests.nats_server import NatsServer
from tests.tcp_proxy import TcpProxy
from worker_abstraction.stores.jetstream.connection import NatsStoreError, NatsUnavailableError
from worker_abstraction.stores.jetstream.partitions import (
    TRUSTED_SHARE,
    PartitionLeases,
    PartitionOptions,
    assign,
    partition_of,
    preferred_owner,
)

pytestmark = pytest.mark.timeout(60)

PARTITIONS = 16
LEASE = 2.0  # seconds: renewed every 0.67 s, trusted 1.67 s, the member key lives 2 s


# -- the hashing, without NATS --------------------------------------------------------------------------------


def test_partition_of_is_stable_and_spreads_ids_evenly() -> None:
    # Pinned: every process, whatever its hash seed, must put a task in the same partition.
    assert [partition_of(f"task-{i}", 32) for i in range(6)] == [26, 3, 23, 6, 1, 13]
    assert (partition_of("", 32), partition_of("é/ü", 7)) == (20, 0)
    counts = Counter(partition_of(f"task-{i}", 32) for i in range(32_000))
    assert set(counts) == set(range(32))
    assert all(800 <= count <= 1200 for count in counts.values()), counts  # 1,000 each on average


def test_assign_gives_each_member_a_fair_share_and_moves_little_when_one_joins() -> None:
    three = assign(3_000, ["a", "b", "c"])
    assert sorted(set().union(*three.values())) == list(range(3_000))
    assert sum(len(share) for share in three.values()) == 3_000  # no partition in two shares
    assert all(900 <= len(share) <= 1_100 for share in three.values()), {m: len(s) for m, s in three.items()}
    four = assign(3_000, ["a", "b", "c", "d"])
    for member in "abc":
        assert four[member] <= three[member]  # nothing moves between the members already there
    assert 600 <= len(four["d"]) <= 900  # the newcomer takes about a quarter, from everyone
    assert assign(3_000, ["c", "b", "a"]) == three  # the order members are listed in does not matter
    assert preferred_owner(5, []) is None
    assert assign(4, ["solo"]) == {"solo": {0, 1, 2, 3}}


# -- the replicas on a real nats-server ------------------------------------------------------------------------


@dataclass
class Event:
    at: float  # time.monotonic()
    replica: str
    kind: str  # "releasing", "gained" or "lost"
    partition: int
    detail: object


@dataclass
class Timeline:
    """Every replica's events in order; a gain while another replica counts the partition held is an overlap."""

    events: list[Event] = field(default_factory=list)
    replicas: dict[str, PartitionLeases] = field(default_factory=dict)
    overlaps: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def follow(self, leases: PartitionLeases) -> None:
        name = leases.replica
        self.replicas[name] = leases
        leases.on_gained.append(lambda n, epoch: self.record(name, "gained", n, epoch))
        leases.on_lost.append(lambda n, reason: self.record(name, "lost", n, reason))

        async def releasing(n: int) -> None:
            self.record(name, "releasing", n, None)

        leases.on_releasing.append(releasing)

    def record(self, name: str, kind: str, partition: int, detail: object) -> None:
        if kind == "gained":
            self.overlaps.extend(
                f"{name} gained {partition} while {other} held it"
                for other, leases in self.replicas.items()
                if other != name and leases.held(partition)
            )
        self.events.append(Event(time.monotonic(), name, kind, partition, detail))
        self.changed.set()

    async def until(self, predicate: Callable[[], bool], timeout_seconds: float = 15.0) -> None:
        async with asyncio.timeout(timeout_seconds):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def of(self, kind: str, replica: str, *, since: float = 0.0) -> dict[int, Event]:
        """The first event of `kind` of each partition at `replica` from `since` on."""
        found: dict[int, Event] = {}
        for event in self.events:
            if event.kind == kind and event.replica == replica and event.at >= since:
                found.setdefault(event.partition, event)
        return found

    def check(self) -> None:
        """No overlap seen, none in the order of events, and each partition's epochs only grow."""
        assert self.overlaps == []
        holders: dict[int, str] = {}
        epochs: dict[int, int] = {}
        for event in self.events:
            if event.kind == "gained":
                assert event.partition not in holders, f"{event.replica} gained {event.partition} held by another"
                assert isinstance(event.detail, int) and event.detail > epochs.get(event.partition, 0)
                holders[event.partition], epochs[event.partition] = event.replica, event.detail
            elif event.kind == "lost" and holders.get(event.partition) == event.replica:
                del holders[event.partition]


class Pacer:
    """The membership keeper's sleep: `stall()` holds the keeper at its next pause until `resume()`; every
    pause wakes `until()`, so a test can wait for rounds."""

    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.running.set()
        self.tick = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.tick.set()
        await asyncio.sleep(seconds)
        await self.running.wait()

    def stall(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    async def until(self, predicate: Callable[[], bool], timeout_seconds: float = 10.0) -> None:
        async with asyncio.timeout(timeout_seconds):
            while not predicate():
                self.tick.clear()
                await self.tick.wait()


class Cluster:
    """Replicas on one nats-server (each on a connection of its own), and their timeline."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.timeline = Timeline()
        self.leases: list[PartitionLeases] = []
        self.clients: list[Client] = []
        self.proxies: list[TcpProxy] = []

    async def proxy(self, port: int) -> TcpProxy:
        """A TCP proxy to the server (closed after every replica and connection, at the end)."""
        proxy = TcpProxy("127.0.0.1", port)
        await proxy.start()
        self.proxies.append(proxy)
        return proxy

    async def start(
        self, name: str, *, url: str | None = None, lease: float = LEASE, pacer: Pacer | None = None
    ) -> PartitionLeases:
        client = await nats.connect(url or self.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
        self.clients.append(client)
        options = PartitionOptions(partitions=PARTITIONS, lease_seconds=lease)
        leases = await PartitionLeases.open(client, name, options, sleep=pacer.sleep if pacer else asyncio.sleep)
        self.timeline.follow(leases)
        self.leases.append(leases)
        return leases

    def settled(self, *replicas: PartitionLeases) -> Callable[[], bool]:
        """Each of `replicas` holds exactly the share rendezvous hashing gives it among them."""
        shares = assign(PARTITIONS, [r.replica for r in replicas])
        return lambda: all(set(r.owned()) == shares[r.replica] for r in replicas)

    async def aclose(self) -> None:
        for leases in self.leases:
            await leases.close()
        for client in self.clients:
            await client.close()
        for proxy in self.proxies:
            await proxy.aclose()


@pytest.fixture
async def cluster(nats_server: NatsServer) -> AsyncIterator[Cluster]:
    found = Cluster(nats_server.url)
    yield found
    await found.aclose()


async def test_one_replica_holds_every_partition_and_survives_a_callback_that_raises(cluster: Cluster) -> None:
    a = await cluster.start("a")
    raised = []

    def boom(partition: int, epoch: int) -> None:
        raised.append(partition)
        raise RuntimeError("a broken listener")

    a.on_gained.insert(0, boom)
    await cluster.timeline.until(cluster.settled(a))
    assert a.owned() == dict.fromkeys(range(PARTITIONS), 1)
    assert sorted(raised) == list(range(PARTITIONS))  # it was called each time, and the others after it
    assert a.members == {"a"} and a.held(3) and a.epoch(3) == 1
    assert not a.held(PARTITIONS) and a.epoch(PARTITIONS) is None
    cluster.timeline.check()


async def test_two_replicas_split_the_partitions(cluster: Cluster) -> None:
    a = await cluster.start("a")
    b = await cluster.start("b")
    await cluster.timeline.until(cluster.settled(a, b))
    held_a, held_b = set(a.owned()), set(b.owned())
    assert held_a and held_b
    assert held_a | held_b == set(range(PARTITIONS)) and not held_a & held_b
    assert a.members == b.members == {"a", "b"}
    cluster.timeline.check()


async def test_a_third_replica_takes_its_share_and_no_partition_is_held_twice(cluster: Cluster) -> None:
    a = await cluster.start("a")
    b = await cluster.start("b")
    await cluster.timeline.until(cluster.settled(a, b))
    before = {"a": set(a.owned()), "b": set(b.owned())}
    joined = time.monotonic()
    c = await cluster.start("c")
    await cluster.timeline.until(cluster.settled(a, b, c))
    timeline = cluster.timeline
    assert set(c.owned()) == assign(PARTITIONS, "abc")["c"] != set()
    for name in "ab":  # only partitions c wins moved: a and b gained nothing
        assert timeline.of("gained", name, since=joined) == {}
        assert set(timeline.of("lost", name, since=joined)) == before[name] & set(c.owned())
    gained = timeline.of("gained", "c", since=joined)
    for partition in c.owned():  # its holder stopped (on_releasing), let go, and only then c took it
        giver = "a" if partition in before["a"] else "b"
        releasing = timeline.of("releasing", giver, since=joined)[partition]
        lost = timeline.of("lost", giver, since=joined)[partition]
        assert releasing.at <= lost.at < gained[partition].at
        assert isinstance(lost.detail, str) and "released" in lost.detail
    timeline.check()


async def test_a_partition_moves_only_once_its_holder_finished_on_releasing(cluster: Cluster) -> None:
    a = await cluster.start("a")
    b = await cluster.start("b")
    await cluster.timeline.until(cluster.settled(a, b))
    gate = asyncio.Event()
    stopping: list[int] = []

    async def stop_work(partition: int) -> None:  # the engine stopping the partition's tasks, slowly
        stopping.append(partition)
        await gate.wait()

    a.on_releasing.append(stop_work)
    moving = set(a.owned()) & assign(PARTITIONS, "abc")["c"]
    assert moving  # (c wins some of a's partitions)
    c = await cluster.start("c")
    await cluster.timeline.until(lambda: set(stopping) == moving)
    # c is live and wins them, but a has not finished stopping: a still holds them, c has none of them
    assert all(a.held(n) for n in moving) and not any(c.held(n) for n in moving)
    opened = time.monotonic()
    gate.set()
    await cluster.timeline.until(cluster.settled(a, b, c))
    assert all(event.at > opened for n, event in cluster.timeline.of("gained", "c").items() if n in moving)
    cluster.timeline.check()


async def test_close_hands_the_partitions_over_at_once(cluster: Cluster) -> None:
    a = await cluster.start("a")
    b = await cluster.start("b")
    await cluster.timeline.until(cluster.settled(a, b))
    share = set(b.owned())
    closed = time.monotonic()
    await b.close()
    assert b.owned() == {} and set(cluster.timeline.of("releasing", "b", since=closed)) == share
    await cluster.timeline.until(cluster.settled(a))
    handed_over = max(e.at for e in cluster.timeline.of("gained", "a", since=closed).values()) - closed
    assert handed_over < LEASE / 4, f"took {handed_over:.2f}s"  # at once, not when a lease runs out
    cluster.timeline.check()
    await a.close()
    assert a.owned() == {} and set(cluster.timeline.of("lost", "a", since=closed)) == set(range(PARTITIONS))
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("partitions-")] == []  # none left behind


async def test_a_replica_cut_off_from_nats_loses_its_partitions_before_another_claims_them(
    cluster: Cluster, nats_server: NatsServer
) -> None:
    proxy = await cluster.proxy(nats_server.port)
    a = await cluster.start("a", url=proxy.url)
    b = await cluster.start("b")
    await cluster.timeline.until(cluster.settled(a, b))
    share = set(a.owned())
    cut = time.monotonic()
    await proxy.cut()
    await cluster.timeline.until(cluster.settled(b))
    lost = cluster.timeline.of("lost", "a", since=cut)
    gained = cluster.timeline.of("gained", "b", since=cut)
    assert set(lost) == share and a.owned() == {}
    for partition in share:
        assert lost[partition].at < gained[partition].at
        assert isinstance(lost[partition].detail, str) and "lapsed" in lost[partition].detail
        # a's last confirmed renewal started before the cut: it stops within the trusted share of it
        assert lost[partition].at - cut <= TRUSTED_SHARE * LEASE + 0.25
    # takeover: the member key's TTL, the server's expiry delay (< 1 s), one claim
    assert max(e.at for e in gained.values()) - cut <= math.ceil(LEASE) + 1.5
    await proxy.restore()  # a comes back as a new incarnation and takes its share again
    await cluster.timeline.until(cluster.settled(a, b))
    cluster.timeline.check()


async def test_a_stalled_keeper_loses_its_partitions_by_the_trusted_share(cluster: Cluster) -> None:
    pacer = Pacer()
    a = await cluster.start("a", pacer=pacer)
    b = await cluster.start("b")
    await cluster.timeline.until(cluster.settled(a, b))
    share = set(a.owned())
    stalled = time.monotonic()
    pacer.stall()  # NATS answers, but a renews nothing any more
    await cluster.timeline.until(lambda: set(cluster.timeline.of("lost", "a", since=stalled)) == share)
    lost_at = time.monotonic()
    assert a.owned() == {} and not any(a.held(n) for n in share)
    assert lost_at - stalled <= TRUSTED_SHARE * LEASE + 0.25
    assert not any(b.held(n) for n in share)  # b cannot claim before a's member key expires
    await cluster.timeline.until(cluster.settled(b))
    gained = cluster.timeline.of("gained", "b", since=stalled)
    lost = cluster.timeline.of("lost", "a", since=stalled)
    assert all(lost[n].at < gained[n].at for n in share)
    pacer.resume()  # its member key is gone: it joins again, and gets its share back
    await cluster.timeline.until(cluster.settled(a, b))
    cluster.timeline.check()


async def test_an_outage_shorter_than_the_lease_loses_nothing(cluster: Cluster, nats_server: NatsServer) -> None:
    lease = 4.0  # renewed every 1.33 s, trusted 3.33 s after each confirmed renewal; answers awaited 1 s
    proxy = await cluster.proxy(nats_server.port)
    pacer = Pacer()
    a = await cluster.start("a", url=proxy.url, lease=lease, pacer=pacer)
    b = await cluster.start("b", lease=lease)
    await cluster.timeline.until(cluster.settled(a, b))
    owned = a.owned()
    renewed = a.held_until
    await pacer.until(lambda: a.held_until > renewed)  # a renewal was just confirmed
    trusted_until, errors = a.held_until, a.availability.errors
    since = time.monotonic()
    await proxy.cut()
    # The outage's length (not a wait for something): the next renewal round times out within it, and
    # its retry is answered only once the connection is back.
    await asyncio.sleep(2.5)
    assert a.availability.errors > errors and not a.availability.available
    await proxy.restore()
    restored = time.monotonic()
    assert restored < trusted_until  # (the case in point: it ended while the partitions were still held)
    await pacer.until(lambda: a.held_until > restored + TRUSTED_SHARE * lease)  # renewed after it
    assert a.availability.available
    assert a.owned() == owned  # same partitions, same epochs
    assert cluster.timeline.of("lost", "a", since=since) == {}
    assert cluster.timeline.of("gained", "b", since=since) == {}
    cluster.timeline.check()


async def test_a_replica_restarted_under_its_name_waits_for_its_previous_lease(
    cluster: Cluster, nats_server: NatsServer
) -> None:
    proxy = await cluster.proxy(nats_server.port)
    old = await cluster.start("a", url=proxy.url)
    await cluster.timeline.until(cluster.settled(old))
    await proxy.cut()  # as good as dead: it never writes again
    started = time.monotonic()
    client = await nats.connect(nats_server.url)  # the same name, on a connection of its own
    cluster.clients.append(client)
    fresh = await PartitionLeases.open(client, "a", PartitionOptions(partitions=PARTITIONS, lease_seconds=LEASE))
    gained: dict[int, float] = {}
    fresh.on_gained.append(lambda n, epoch: gained.setdefault(n, time.monotonic()))
    fresh.on_gained.append(lambda n, epoch: cluster.timeline.changed.set())
    cluster.leases.append(fresh)
    await cluster.timeline.until(lambda: set(fresh.owned()) == set(range(PARTITIONS)))
    lost = cluster.timeline.of("lost", "a", since=started)
    assert set(lost) == set(range(PARTITIONS))
    assert all(lost[n].at < gained[n] for n in gained)  # the old one stopped first
    assert min(gained.values()) - started >= TRUSTED_SHARE * LEASE - 0.7  # it waited for the old lease
    answering = asyncio.Event()
    old.availability.listen(lambda available: available and answering.set())
    await proxy.restore()  # the old process comes back: its name is taken, it holds nothing
    async with asyncio.timeout(10):
        await answering.wait()
    assert old.owned() == {} and set(fresh.owned()) == set(range(PARTITIONS))


async def test_replicas_must_agree_on_the_partition_count(cluster: Cluster) -> None:
    await cluster.start("a")
    client = await nats.connect(cluster.url)
    cluster.clients.append(client)
    with pytest.raises(NatsStoreError):
        await PartitionLeases.open(client, "b", PartitionOptions(partitions=PARTITIONS + 1, lease_seconds=LEASE))
    with pytest.raises(NatsStoreError):
        await PartitionLeases.open(client, "", PartitionOptions(lease_seconds=0.5))


async def test_opening_without_nats_is_unavailable(nats_server: NatsServer) -> None:
    client = await nats.connect(nats_server.url)
    await client.close()
    with pytest.raises(NatsUnavailableError):
        await PartitionLeases.open(client, "a", PartitionOptions(partitions=PARTITIONS, lease_seconds=LEASE))
