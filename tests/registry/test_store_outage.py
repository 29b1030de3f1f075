"""Registry replicas on NATS through an outage of NATS: no worker that kept heartbeating is evicted.

The replicas reach NATS through a TCP proxy that the test cuts: to them NATS is gone (as when the node they
use dies), while NATS runs on and expires keys on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import ToolWorker, eventually
from tests.nats_server import NatsServer
from tests.tcp_proxy import TcpProxy
from worker_abstraction import RegistryClient, RegistryServer
from worker_abstraction.observability.metrics import RegistryMetrics
from worker_abstraction.registry.events import WorkerEvent, WorkerEventType
from worker_abstraction.stores.base import WorkerChange
from worker_abstraction.stores.jetstream import JetStreamWorkerStore, NatsOptions
from worker_abstraction.types import WorkerInfo

pytestmark = pytest.mark.timeout(90)
TTL_SECONDS = 2.0
OUTAGE_SECONDS = 3 * TTL_SECONDS  # longer than the TTL, and than a NATS request's timeout (5 s)


@dataclass
class Replica:
    server: RegistryServer
    store: JetStreamWorkerStore
    metrics: RegistryMetrics


@pytest.fixture
async def replicas(nats_proxy: TcpProxy) -> AsyncIterator[list[Replica]]:
    """Two registry replicas reaching NATS through the proxy (each counting into its own metrics)."""
    started: list[Replica] = []
    for _ in range(2):
        store = await JetStreamWorkerStore.open(NatsOptions((nats_proxy.url,)), key_ttl_seconds=TTL_SECONDS)
        metrics = RegistryMetrics()
        server = RegistryServer(
            port=0, ttl_seconds=TTL_SECONDS, sweep_interval_seconds=0.1, store=store, metrics=metrics
        )
        await server.start()
        started.append(Replica(server, store, metrics))
    yield started
    await nats_proxy.restore()
    for replica in started:
        await replica.server.stop(None)
        await replica.store.aclose()


class Watched:
    """Every event a registry's watchers hear, from its SYNCED on."""

    def __init__(self, address: str) -> None:
        self.client = RegistryClient(address)
        self.events: list[WorkerEvent] = []
        self.synced = asyncio.Event()
        self._joined: dict[str, asyncio.Event] = {}
        self.task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        async for event in self.client.watch():
            self.events.append(event)
            if event.type is WorkerEventType.SYNCED:
                self.synced.set()
            if event.type is WorkerEventType.JOINED and event.worker is not None:
                self.joined(event.worker.worker_id).set()

    def joined(self, worker_id: str) -> asyncio.Event:
        return self._joined.setdefault(worker_id, asyncio.Event())

    def left(self, worker_id: str) -> list[WorkerEvent]:
        left = [e for e in self.events if e.type is WorkerEventType.LEFT and e.worker is not None]
        return [e for e in left if e.worker is not None and e.worker.worker_id == worker_id]

    async def aclose(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.aclose()


async def heard_after(address: str, moment: float) -> bool:
    client = RegistryClient(address)
    try:
        workers = await client.list_workers()
    finally:
        await client.aclose()
    return any(w.last_heartbeat is not None and w.last_heartbeat.timestamp() > moment for w in workers)


@contextlib.asynccontextmanager
async def cut_off(nats_proxy: TcpProxy) -> AsyncIterator[None]:
    """The replicas lose NATS until the block ends."""
    await nats_proxy.cut()
    try:
        yield
    finally:
        await nats_proxy.restore()


async def test_a_worker_that_kept_heartbeating_through_a_nats_outage_longer_than_the_ttl_is_never_evicted(
    replicas: list[Replica], nats_proxy: TcpProxy, nats_server: NatsServer
) -> None:
    a, b = (replica.server for replica in replicas)
    worker = ToolWorker(a.address, port=0, heartbeat_interval_seconds=0.2)
    watched = [Watched(a.address), Watched(b.address)]
    # What the bucket itself does, seen from a connection the outage does not cut (a key expiring included).
    bucket = await JetStreamWorkerStore.open(NatsOptions((nats_server.url,)), key_ttl_seconds=TTL_SECONDS)
    changes: list[WorkerChange] = []
    bucket.listen(changes.append)
    try:
        async with asyncio.timeout(5):
            for watch in watched:
                await watch.synced.wait()
        started_at = time.time()
        await worker.start()
        await eventually(lambda: heard_after(b.address, started_at), what="B lists the worker's heartbeats")

        async with cut_off(nats_proxy):  # the worker heartbeats on, to A
            await asyncio.sleep(OUTAGE_SECONDS)  # (the outage lasts as long as the test says: no event ends it)
        resumed_at = time.time()

        # Past a whole TTL after NATS answers again, the worker's heartbeats are stored and read everywhere;
        # by then any replica that were to evict it on what it read before or during the outage has done so.
        for replica in (a, b):
            await eventually(
                lambda r=replica: heard_after(r.address, resumed_at + TTL_SECONDS + 0.5),
                timeout_seconds=15,
                what="heartbeats stored after the outage",
            )
        # Every heartbeat was answered: it never had to register again.
        assert replicas[0].metrics.registry.get_sample_value("wa_worker_registrations_total") == 1.0
        # A registration made now is heard by both watchers after every change NATS made before it (its key
        # expiring, had it expired): the watches are in stream order.
        registrar = RegistryClient(a.address)
        try:
            await registrar.register(WorkerInfo(worker_id="barrier", name="barrier", address="127.0.0.1:1"))
        finally:
            await registrar.aclose()
        async with asyncio.timeout(30):
            for watch in watched:
                await watch.joined("barrier").wait()
        assert [watch.left(worker.worker_id) for watch in watched] == [[], []]
        gone = [
            c for c in changes if c.current is None and c.previous and c.previous.info.worker_id == worker.worker_id
        ]
        assert gone == []  # its key neither expired nor was removed
    finally:
        await bucket.aclose()
        for watch in watched:
            await watch.aclose()
        await worker.stop(grace_seconds=0.5)


async def test_a_registry_whose_nats_does_not_answer_is_not_serving_until_it_answers_again(
    replicas: list[Replica], nats_proxy: TcpProxy
) -> None:
    a = replicas[0].server
    channel = aio.insecure_channel(a.address)
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    try:
        statuses = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        async with asyncio.timeout(15):
            assert (await statuses.read()).status == serving
            async with cut_off(nats_proxy):
                assert (await statuses.read()).status == not_serving
            assert (await statuses.read()).status == serving
    finally:
        await channel.close(None)
