"""A worker's standing: ACTIVE, SUSPECT once silent past `suspect_after_seconds`, EVICTED past the TTL.

The `Registry` tests age a worker by moving its last heartbeat back in the store (no waiting); the
server tests let a real sweeper do it, waiting on WatchWorkers events under a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from google.protobuf import empty_pb2
from grpc import aio

from worker_abstraction import RegistryClient, RegistryServer, WorkerInfo, WorkerState
from worker_abstraction._convert import worker_from_pb, worker_to_pb
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.registry.events import WorkerEvent, WorkerEventType
from worker_abstraction.registry.service import Registry
from worker_abstraction.stores.memory import MemoryWorkerStore

# Far enough apart that a SUSPECT worker can be looked at several times before it is evicted.
TTL = 2.0
SUSPECT_AFTER = 0.3
pytestmark = pytest.mark.timeout(30)


def info(worker_id: str = "w1", port: int = 6000) -> WorkerInfo:
    return WorkerInfo(worker_id=worker_id, name="tester", address=f"127.0.0.1:{port}")


# --- Registry, no gRPC -------------------------------------------------------------------------------


@pytest.fixture
def service() -> Registry:
    return Registry(MemoryWorkerStore(), ttl_seconds=TTL, suspect_after_seconds=SUSPECT_AFTER)


async def silence(service: Registry, worker_id: str, seconds: float) -> None:
    record = await service.store.get(worker_id)
    assert record is not None
    record.last_seen = time.time() - seconds


def drain(queue: asyncio.Queue[WorkerEvent | None]) -> list[WorkerEvent]:
    events = []
    while not queue.empty():
        event = queue.get_nowait()
        assert event is not None
        events.append(event)
    return events


def test_suspect_after_defaults_to_two_heartbeat_intervals_and_must_be_below_the_ttl() -> None:
    registry = Registry(MemoryWorkerStore(), ttl_seconds=30)
    assert registry.suspect_after_seconds == pytest.approx(20)
    assert registry.heartbeat_interval_seconds == pytest.approx(10)
    # A short suspect window asks for heartbeats often enough that one lost heartbeat is not suspect.
    assert Registry(MemoryWorkerStore(), ttl_seconds=30, suspect_after_seconds=4).heartbeat_interval_seconds == 2
    for bad in (0, -1, 30, 31):
        with pytest.raises(ValueError, match="suspect_after_seconds"):
            Registry(MemoryWorkerStore(), ttl_seconds=30, suspect_after_seconds=bad)


async def test_a_silent_worker_becomes_suspect_once_and_a_heartbeat_makes_it_active(service: Registry) -> None:
    await service.register(info())
    events = service.events.subscribe()
    await silence(service, "w1", SUSPECT_AFTER + 0.5)

    assert await service.sweep() == (1, 0)
    assert await service.sweep() == (0, 0)  # still suspect: no second event
    [suspect] = drain(events)
    assert suspect.type is WorkerEventType.UPDATED and suspect.worker is not None
    assert suspect.worker.state is WorkerState.SUSPECT
    assert suspect.worker.state_reason.startswith("no heartbeat for 0.")
    listed = await service.live_workers()  # suspect workers are still listed
    assert [(w.worker_id, w.state) for w in listed] == [("w1", WorkerState.SUSPECT)]
    assert (await service.get("w1")).state_reason == suspect.worker.state_reason

    assert await service.heartbeat("w1", 0)
    [active] = drain(events)
    assert active.type is WorkerEventType.UPDATED and active.worker is not None
    assert (active.worker.state, active.worker.state_reason) == (WorkerState.ACTIVE, "")
    assert await service.heartbeat("w1", 0)
    assert drain(events) == []  # nothing changed


async def test_registering_again_makes_a_suspect_worker_active(service: Registry) -> None:
    await service.register(info())
    await silence(service, "w1", SUSPECT_AFTER + 0.5)
    await service.sweep()
    events = service.events.subscribe()
    await service.register(info())
    [updated] = drain(events)
    assert updated.type is WorkerEventType.UPDATED and updated.worker is not None
    assert updated.worker.state is WorkerState.ACTIVE and (await service.get("w1")).state is WorkerState.ACTIVE


async def test_eviction_is_left_with_state_evicted_and_its_reason(service: Registry) -> None:
    await service.register(info())
    events = service.events.subscribe()
    await silence(service, "w1", TTL + 0.5)
    assert await service.evict_stale() == 1
    [left] = drain(events)  # straight from ACTIVE to gone: no SUSPECT event on the way
    assert left.type is WorkerEventType.LEFT and left.worker is not None
    assert left.reason.startswith("evicted: no heartbeat for 2.")
    assert (left.worker.state, left.worker.state_reason) == (WorkerState.EVICTED, left.reason)
    assert await service.live_workers() == []


async def test_deregistering_leaves_as_it_stood_not_evicted(service: Registry) -> None:
    await service.register(info())
    events = service.events.subscribe()
    await service.deregister("w1")
    [left] = drain(events)
    assert left.type is WorkerEventType.LEFT and left.reason == "deregistered" and left.worker is not None
    assert left.worker.state is WorkerState.ACTIVE


async def test_a_worker_replaced_on_its_address_is_evicted(service: Registry) -> None:
    await service.register(info("old"))
    events = service.events.subscribe()
    await service.register(info("new"))
    left, joined = drain(events)
    assert left.type is WorkerEventType.LEFT and left.worker is not None and left.worker.worker_id == "old"
    assert left.worker.state is WorkerState.EVICTED and "replaced by new" in left.worker.state_reason
    assert joined.type is WorkerEventType.JOINED


async def test_a_heartbeat_between_look_and_verdict_wins(service: Registry) -> None:
    await service.register(info())
    await silence(service, "w1", SUSPECT_AFTER + 0.5)
    verdict_from = time.time() - SUSPECT_AFTER  # what a sweep saw before this heartbeat came in
    assert await service.heartbeat("w1", 0)
    assert await service.store.mark_suspect("w1", reason="stale", seen_before=verdict_from) is None
    assert (await service.get("w1")).state is WorkerState.ACTIVE


@pytest.mark.parametrize(
    ("wire", "state"),
    [
        (pb.WORKER_STATE_UNSPECIFIED, WorkerState.ACTIVE),  # a seed registry says nothing
        (pb.WORKER_STATE_ACTIVE, WorkerState.ACTIVE),
        (pb.WORKER_STATE_SUSPECT, WorkerState.SUSPECT),
        (pb.WORKER_STATE_EVICTED, WorkerState.EVICTED),
    ],
)
def test_state_crosses_the_wire_both_ways(wire: int, state: WorkerState) -> None:
    message = worker_to_pb(info())
    message.state, message.state_reason = wire, "why"  # type: ignore[assignment]
    decoded = worker_from_pb(message)
    assert (decoded.state, decoded.state_reason) == (state, "why")
    assert worker_from_pb(worker_to_pb(decoded)) == decoded


# --- a real server on 127.0.0.1:0 ----------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[RegistryServer]:
    async with RegistryServer(
        port=0, ttl_seconds=TTL, suspect_after_seconds=SUSPECT_AFTER, sweep_interval_seconds=0.05
    ) as server:
        yield server


async def next_event(events: AsyncIterator[WorkerEvent]) -> WorkerEvent:
    async with asyncio.timeout(TTL + 2):
        return await anext(events)


async def test_suspect_is_visible_everywhere_a_heartbeat_restores_it_and_the_ttl_evicts_it(
    server: RegistryServer,
) -> None:
    client = RegistryClient(server.address)
    events = client.watch()
    async with aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.RegistryServiceStub(channel)

        async def seen() -> tuple[list[tuple[str, int, str]], tuple[int, str]]:
            listed = [(w.worker_id, w.state, w.state_reason) async for w in stub.GetAvailableWorkers(empty_pb2.Empty())]
            found = await stub.GetWorkerById(pb.GetWorkerByIdRequest(worker_id="w1"))
            return listed, (found.state, found.state_reason)

        try:
            assert (await next_event(events)).type is WorkerEventType.SYNCED
            await client.register(info())
            joined = await next_event(events)
            assert joined.type is WorkerEventType.JOINED and joined.worker and joined.worker.state is WorkerState.ACTIVE

            suspect = await next_event(events)
            assert suspect.type is WorkerEventType.UPDATED and suspect.worker
            assert suspect.worker.state is WorkerState.SUSPECT
            reason = suspect.worker.state_reason
            assert reason.startswith("no heartbeat for ")
            assert await seen() == ([("w1", pb.WORKER_STATE_SUSPECT, reason)], (pb.WORKER_STATE_SUSPECT, reason))

            assert await client.heartbeat("w1", 0)  # over HeartbeatStream
            active = await next_event(events)
            assert active.type is WorkerEventType.UPDATED and active.worker
            assert (active.worker.state, active.worker.state_reason) == (WorkerState.ACTIVE, "")

            # Silent again: SUSPECT once (however many sweeps), then LEFT at the TTL.
            again = await next_event(events)
            assert again.type is WorkerEventType.UPDATED and again.worker
            assert again.worker.state is WorkerState.SUSPECT
            left = await next_event(events)
            assert left.type is WorkerEventType.LEFT and left.worker
            assert left.reason.startswith("evicted: no heartbeat for ")
            assert (left.worker.state, left.worker.state_reason) == (WorkerState.EVICTED, left.reason)
            assert [w async for w in stub.GetAvailableWorkers(empty_pb2.Empty())] == []
        finally:
            await events.aclose()
            await client.aclose()


async def test_a_unary_heartbeat_also_restores_a_suspect_worker(server: RegistryServer) -> None:
    client = RegistryClient(server.address)
    events = client.watch()
    async with aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.RegistryServiceStub(channel)
        try:
            assert (await next_event(events)).type is WorkerEventType.SYNCED
            await client.register(info())
            assert (await next_event(events)).type is WorkerEventType.JOINED
            suspect = await next_event(events)
            assert suspect.worker and suspect.worker.state is WorkerState.SUSPECT
            response = await stub.WorkerHeartbeat(pb.HeartbeatRequest(worker_id="w1", current_load=0))
            assert response.success
            active = await next_event(events)
            assert active.type is WorkerEventType.UPDATED and active.worker
            assert active.worker.state is WorkerState.ACTIVE
        finally:
            await events.aclose()
            await client.aclose()


async def test_a_heartbeat_after_the_ttl_evicts_before_the_sweep_and_asks_to_register() -> None:
    registry = Registry(MemoryWorkerStore(), ttl_seconds=30)
    events = registry.events.subscribe()
    await registry.register(WorkerInfo(worker_id="late", name="late", address="127.0.0.1:6003"))
    record = await registry.store.get("late")
    assert record is not None
    record.last_seen = time.time() - 31  # past the TTL; no sweep ran yet
    assert await registry.heartbeat("late", load=0) is False  # must register again
    kinds = []
    while not events.empty():
        event = events.get_nowait()
        assert event is not None
        kinds.append((event.type, event.worker.state if event.worker else None))
    assert kinds[-1] == (WorkerEventType.LEFT, WorkerState.EVICTED)
    assert await registry.live_workers() == []
