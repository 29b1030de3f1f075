"""Two registry replicas on one NATS JetStream bucket serve one view of the workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.conftest import ToolWorker, eventually
from tests.nats_server import NatsServer
from worker_abstraction import AsyncOrchestrator, RegistryClient, RegistryServer
from worker_abstraction.errors import PermissionDeniedError
from worker_abstraction.registry.events import WorkerEvent, WorkerEventType
from worker_abstraction.registry.service import Registry
from worker_abstraction.stores.jetstream import JetStreamWorkerStore, NatsOptions
from worker_abstraction.types import WorkerInfo

Replica = Callable[[], Awaitable[RegistryServer]]
TTL_SECONDS = 3.0


@pytest.fixture
async def replica(nats_server: NatsServer) -> AsyncIterator[Replica]:
    started: list[tuple[RegistryServer, JetStreamWorkerStore]] = []

    async def start() -> RegistryServer:
        store = await JetStreamWorkerStore.open(NatsOptions((nats_server.url,)), key_ttl_seconds=TTL_SECONDS)
        server = RegistryServer(port=0, ttl_seconds=TTL_SECONDS, sweep_interval_seconds=0.1, store=store)
        await server.start()
        started.append((server, store))
        return server

    yield start
    for server, store in started:
        await server.stop(None)
        await store.aclose()


async def names(address: str) -> list[str]:
    client = RegistryClient(address)
    try:
        return sorted(w.worker_id for w in await client.list_workers())
    finally:
        await client.aclose()


async def test_a_worker_registered_through_one_replica_is_listed_heartbeated_and_removed_through_the_other(
    replica: Replica,
) -> None:
    a, b = await replica(), await replica()
    client_a, client_b = RegistryClient(a.address), RegistryClient(b.address)
    try:
        registration = await client_a.register(WorkerInfo(worker_id="w1", name="echo", address="127.0.0.1:7001"))
        await eventually(lambda: names_are(b.address, ["w1"]), what="B lists the worker registered through A")
        assert await client_b.heartbeat(registration.worker_id, load=2)
        await eventually(lambda: load_on(a.address, 2), what="A sees the heartbeat sent to B")
        assert await client_b.deregister("w1")
        await eventually(lambda: names_are(a.address, []), what="A forgets the worker B removed")
    finally:
        await client_a.aclose()
        await client_b.aclose()


async def names_are(address: str, expected: list[str]) -> bool:
    return await names(address) == expected


async def load_on(address: str, load: int) -> bool:
    client = RegistryClient(address)
    try:
        return [w.current_load for w in await client.list_workers()] == [load]
    finally:
        await client.aclose()


async def test_watchers_of_one_replica_hear_of_workers_joining_and_leaving_through_the_other(replica: Replica) -> None:
    a, b = await replica(), await replica()
    watcher, client_a = RegistryClient(b.address), RegistryClient(a.address)
    events: list[WorkerEvent] = []
    synced = asyncio.Event()

    async def watch() -> None:
        async for event in watcher.watch():
            events.append(event)
            if event.type is WorkerEventType.SYNCED:
                synced.set()

    task = asyncio.create_task(watch())
    try:
        async with asyncio.timeout(5):
            await synced.wait()
        await client_a.register(WorkerInfo(worker_id="w1", name="echo", address="127.0.0.1:7001"))
        await eventually(lambda: kinds(events) == ["SYNCED", "JOINED"], what="B's watcher heard JOINED")
        await client_a.deregister("w1")
        await eventually(lambda: kinds(events) == ["SYNCED", "JOINED", "LEFT"], what="B's watcher heard LEFT")
        assert events[-1].reason == "deregistered"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await watcher.aclose()
        await client_a.aclose()


def kinds(events: list[WorkerEvent]) -> list[str]:
    return [e.type.name for e in events]


async def test_a_silent_worker_is_evicted_from_every_replica(replica: Replica) -> None:
    a, b = await replica(), await replica()
    client = RegistryClient(a.address)
    try:
        await client.register(WorkerInfo(worker_id="w1", name="echo", address="127.0.0.1:7001"))
        await eventually(lambda: names_are(b.address, ["w1"]), what="B lists the worker")
        await eventually(lambda: names_are(b.address, []), timeout_seconds=TTL_SECONDS + 5, what="evicted")
        assert await names(a.address) == []
    finally:
        await client.aclose()


async def test_a_worker_given_both_replicas_keeps_heartbeating_when_the_first_stops(replica: Replica) -> None:
    a, b = await replica(), await replica()
    worker = ToolWorker(f"{a.address},{b.address}", port=0, heartbeat_interval_seconds=0.1)
    await worker.start()
    try:
        await eventually(lambda: names_are(b.address, [worker.worker_id]), what="B lists the worker")
        await a.stop(None)
        stopped_at = time.time()
        await eventually(
            lambda: heartbeat_after(b.address, stopped_at + 0.5),
            timeout_seconds=10,
            what="heartbeats reach B after A stopped",
        )
    finally:
        await worker.stop(grace_seconds=0.5)


async def heartbeat_after(address: str, moment: float) -> bool:
    client = RegistryClient(address)
    try:
        workers = await client.list_workers()
    finally:
        await client.aclose()
    return any(w.last_heartbeat is not None and w.last_heartbeat.timestamp() > moment for w in workers)


async def test_the_registering_principal_is_known_to_every_replica(nats_server: NatsServer) -> None:
    options = NatsOptions((nats_server.url,))
    store_a = await JetStreamWorkerStore.open(options, key_ttl_seconds=TTL_SECONDS)
    store_b = await JetStreamWorkerStore.open(options, key_ttl_seconds=TTL_SECONDS)
    try:
        a, b = Registry(store_a, ttl_seconds=TTL_SECONDS), Registry(store_b, ttl_seconds=TTL_SECONDS)
        await a.register(WorkerInfo(worker_id="w1", name="echo", address="127.0.0.1:7001"), owner="alice")
        assert await b.heartbeat("w1", 0, owner="alice")
        with pytest.raises(PermissionDeniedError):
            await b.heartbeat("w1", 0, owner="mallory")
        with pytest.raises(PermissionDeniedError):
            await b.register(WorkerInfo(worker_id="w2", name="echo", address="127.0.0.1:7001"), owner="mallory")
    finally:
        await store_a.aclose()
        await store_b.aclose()


async def test_an_orchestrator_given_both_replicas_finds_workers_that_join_after_the_first_stops(
    replica: Replica,
) -> None:
    a, b = await replica(), await replica()
    both = f"{a.address},{b.address}"
    first = ToolWorker(both, port=0, heartbeat_interval_seconds=0.1)
    await first.start()
    late = ToolWorker(both, port=0, heartbeat_interval_seconds=0.1)
    try:
        async with AsyncOrchestrator(both) as orchestrator:
            await orchestrator.wait_for_workers("echo", timeout_seconds=5)
            await a.stop(None)
            await late.start()  # registers through B: A is gone
            found = await orchestrator.wait_for_workers("echo", count=2, timeout_seconds=10)
            assert late.worker_id in {w.worker_id for w in found}
            handle = await orchestrator.execute_task("echo", {"text": "hi"})
            assert await handle.result(timeout_seconds=10) == {"text": "hi"}
    finally:
        await late.stop(grace_seconds=0.5)
        await first.stop(grace_seconds=0.5)
