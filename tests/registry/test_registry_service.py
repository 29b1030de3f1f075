"""RegistryService on a real server: registration rules, heartbeats, eviction, leaving, watching."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc import aio

from worker_abstraction import RegistryClient, RegistryServer, WorkerNotFoundError, WorkerState
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.registry.events import WorkerEventType


@pytest.fixture
async def stub(registry: RegistryServer) -> AsyncIterator[pb_grpc.RegistryServiceStub]:
    async with aio.insecure_channel(registry.address) as channel:
        yield pb_grpc.RegistryServiceStub(channel)


def worker_info(worker_id: str = "w1", **overrides: object) -> pb.WorkerInfo:
    fields: dict[str, object] = {
        "worker_id": worker_id,
        "name": "tester",
        "address": "127.0.0.1:6000",
        "capabilities": [
            pb.ToolCapability(
                name="dummy_processor",
                parameters=[pb.ToolParameter(name="input", type="string", required=True)],
            )
        ],
    }
    fields.update(overrides)
    return pb.WorkerInfo(**fields)  # type: ignore[arg-type]


async def test_registered_worker_is_listed_and_found_by_id(stub: pb_grpc.RegistryServiceStub) -> None:
    response = await stub.RegisterWorker(pb.RegisterWorkerRequest(worker_info=worker_info()))
    assert response.success and response.worker_id == "w1"
    assert response.heartbeat_interval_seconds > 0
    listed = [w async for w in stub.GetAvailableWorkers(empty_pb2.Empty())]
    assert [w.worker_id for w in listed] == ["w1"]
    found = await stub.GetWorkerById(pb.GetWorkerByIdRequest(worker_id="w1"))
    assert found.capabilities[0].name == "dummy_processor"
    assert found.last_heartbeat.seconds > 0


async def test_registry_assigns_an_id_when_none_is_given(stub: pb_grpc.RegistryServiceStub) -> None:
    response = await stub.RegisterWorker(pb.RegisterWorkerRequest(worker_info=worker_info(worker_id="")))
    assert response.worker_id
    found = await stub.GetWorkerById(pb.GetWorkerByIdRequest(worker_id=response.worker_id))
    assert found.name == "tester"


async def test_unknown_worker_id_is_not_found(stub: pb_grpc.RegistryServiceStub) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.GetWorkerById(pb.GetWorkerByIdRequest(worker_id="nobody"))
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"name": ""}, "name"),
        ({"address": ""}, "address"),
        ({"address": "localhost"}, "address"),
        (
            {"capabilities": [pb.ToolCapability(name="a"), pb.ToolCapability(name="a")]},
            "duplicate capability",
        ),
        (
            {"capabilities": [pb.ToolCapability(name="a", parameters=[pb.ToolParameter(name="x", type="banana")])]},
            "banana",
        ),
    ],
)
async def test_invalid_registration_is_refused_with_a_reason(
    stub: pb_grpc.RegistryServiceStub, overrides: dict[str, object], problem: str
) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.RegisterWorker(pb.RegisterWorkerRequest(worker_info=worker_info(**overrides)))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (raised.value.details() or "")
    listed = [w async for w in stub.GetAvailableWorkers(empty_pb2.Empty())]
    assert listed == []  # refused means not stored; and the server keeps serving


async def test_every_registration_problem_is_listed_at_once(stub: pb_grpc.RegistryServiceStub) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.RegisterWorker(pb.RegisterWorkerRequest(worker_info=worker_info(name="", address="")))
    details = raised.value.details() or ""
    assert "name" in details and "address" in details


async def test_seed_short_type_names_are_accepted(stub: pb_grpc.RegistryServiceStub) -> None:
    cap = pb.ToolCapability(name="c", parameters=[pb.ToolParameter(name="n", type="int")])
    response = await stub.RegisterWorker(pb.RegisterWorkerRequest(worker_info=worker_info(capabilities=[cap])))
    assert response.success


async def test_heartbeat_from_unknown_worker_asks_it_to_register(stub: pb_grpc.RegistryServiceStub) -> None:
    response = await stub.WorkerHeartbeat(pb.HeartbeatRequest(worker_id="ghost", current_load=0))
    assert not response.success and response.must_register


async def test_heartbeat_records_load(stub: pb_grpc.RegistryServiceStub) -> None:
    await stub.RegisterWorker(pb.RegisterWorkerRequest(worker_info=worker_info()))
    response = await stub.WorkerHeartbeat(pb.HeartbeatRequest(worker_id="w1", current_load=3))
    assert response.success and not response.must_register
    assert (await stub.GetWorkerById(pb.GetWorkerByIdRequest(worker_id="w1"))).current_load == 3


async def test_negative_load_is_invalid(stub: pb_grpc.RegistryServiceStub) -> None:
    await stub.RegisterWorker(pb.RegisterWorkerRequest(worker_info=worker_info()))
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.WorkerHeartbeat(pb.HeartbeatRequest(worker_id="w1", current_load=-1))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_sweeper_evicts_silent_workers_without_anyone_listing(registry: RegistryServer) -> None:
    client = RegistryClient(registry.address)
    events = client.watch()
    try:
        assert (await anext(events)).type is WorkerEventType.SYNCED
        await client.register(_domain_info())
        assert (await anext(events)).type is WorkerEventType.JOINED
        async with asyncio.timeout(5):  # ttl 1 s + sweep 0.1 s
            suspect = await anext(events)  # silent past two thirds of the TTL first
            left = await anext(events)
        assert suspect.type is WorkerEventType.UPDATED and suspect.worker
        assert suspect.worker.state is WorkerState.SUSPECT
        assert left.type is WorkerEventType.LEFT
        assert "evicted" in left.reason
        assert await client.list_workers() == []
    finally:
        await events.aclose()
        await client.aclose()


async def test_deregister_removes_at_once_and_unknown_is_not_found(stub: pb_grpc.RegistryServiceStub) -> None:
    await stub.RegisterWorker(pb.RegisterWorkerRequest(worker_info=worker_info()))
    assert (await stub.DeregisterWorker(pb.DeregisterWorkerRequest(worker_id="w1"))).success
    assert [w async for w in stub.GetAvailableWorkers(empty_pb2.Empty())] == []
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.DeregisterWorker(pb.DeregisterWorkerRequest(worker_id="w1"))
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND


async def test_watch_sends_snapshot_then_sync_then_changes(registry: RegistryServer) -> None:
    client = RegistryClient(registry.address)
    await client.register(_domain_info("a", port=6001))
    events = client.watch()
    try:
        first = await anext(events)
        assert first.type is WorkerEventType.JOINED and first.worker and first.worker.worker_id == "a"
        assert (await anext(events)).type is WorkerEventType.SYNCED
        assert await client.heartbeat("a", 2)
        updated = await anext(events)
        assert updated.type is WorkerEventType.UPDATED and updated.worker and updated.worker.current_load == 2
        assert await client.deregister("a")
        left = await anext(events)
        assert left.type is WorkerEventType.LEFT and left.reason == "deregistered"
    finally:
        await events.aclose()
        await client.aclose()


async def test_new_worker_on_a_dead_workers_address_replaces_it(registry: RegistryServer) -> None:
    client = RegistryClient(registry.address)
    try:
        await client.register(_domain_info("old"))
        await client.register(_domain_info("new"))
        assert [w.worker_id for w in await client.list_workers()] == ["new"]
        with pytest.raises(WorkerNotFoundError):
            await client.get_worker("old")
    finally:
        await client.aclose()


def _domain_info(worker_id: str = "w1", port: int = 6000):  # type: ignore[no-untyped-def]
    from worker_abstraction import WorkerInfo

    return WorkerInfo(worker_id=worker_id, name="tester", address=f"127.0.0.1:{port}")
