"""Health checking and server reflection on every server, asked with grpc's own clients: each server and
service reports SERVING once started and NOT_SERVING while it drains, the daemon NOT_SERVING while its
store cannot write, reflection lists and describes the services, and neither needs credentials."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, empty_pb2
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.conftest import Gates, ToolWorker
from worker_abstraction import OrchestratorServer, RegistryServer, bearer
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.auth import OPEN_SERVICES, Authenticator, TokenFile
from worker_abstraction.observability.health import (
    HEALTH_SERVICE,
    ORCHESTRATOR_SERVICE,
    REFLECTION_SERVICE,
    REGISTRY_SERVICE,
    WORKER_SERVICE,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def servers(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[dict[str, str]]:
    """A registry, a worker and a daemon: each one's address by the service it serves."""
    worker = await start_worker()
    async with OrchestratorServer(registry.address, port=0) as daemon:
        yield {REGISTRY_SERVICE: registry.address, WORKER_SERVICE: worker.address, ORCHESTRATOR_SERVICE: daemon.address}


async def check(address: str, service: str = "") -> Any:
    """The status a health check of `service` on `address` answers, asked without credentials."""
    async with aio.insecure_channel(address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return response.status


def describe(address: str) -> tuple[list[str], Any]:
    """The services a server lists by reflection, and OrchestratorService's descriptor if it serves it
    (blocking: run it in a thread, the servers are on this loop)."""
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = list(database.get_services())
        if ORCHESTRATOR_SERVICE not in services:
            return services, None
        return services, descriptor_pool.DescriptorPool(database).FindServiceByName(ORCHESTRATOR_SERVICE)


async def test_every_server_reports_serving_for_itself_and_its_service(servers: dict[str, str]) -> None:
    for service, address in servers.items():
        assert await check(address) == SERVING, service
        assert await check(address, service) == SERVING, service
        with pytest.raises(aio.AioRpcError) as unknown:
            await check(address, "worker_abstraction.NoSuchService")
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND, service
        others = [other for other in servers if other != service]
        with pytest.raises(aio.AioRpcError) as elsewhere:
            await check(address, others[0])
        assert elsewhere.value.code() is grpc.StatusCode.NOT_FOUND, (service, others[0])


async def test_reflection_lists_each_servers_services_and_describes_the_daemons(servers: dict[str, str]) -> None:
    for service, address in servers.items():
        async with asyncio.timeout(10):
            listed, described = await asyncio.to_thread(describe, address)
        assert sorted(listed) == sorted([service, HEALTH_SERVICE, REFLECTION_SERVICE]), service
    assert described is not None
    submit = described.FindMethodByName("SubmitTask")
    assert submit.input_type.full_name == "worker_abstraction.SubmitTaskRequest"
    assert submit.output_type.full_name == "worker_abstraction.SubmitTaskResponse"
    watch = described.FindMethodByName("WatchTask")
    assert watch.server_streaming and not watch.client_streaming


async def test_watch_sends_the_status_then_not_serving_when_the_registry_stops() -> None:
    registry = RegistryServer(port=0)
    await registry.start()
    stopping: asyncio.Task[None] | None = None
    try:
        async with aio.insecure_channel(registry.address) as channel, asyncio.timeout(10):
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=REGISTRY_SERVICE))
            assert (await watch.read()).status == SERVING
            stopping = asyncio.create_task(registry.stop(grace_seconds=5))
            assert (await watch.read()).status == NOT_SERVING
            watch.cancel()  # (an open watch would hold the stop for its grace period)
            await stopping
    finally:
        if stopping is None:
            await registry.stop(None)


class Draining:
    """A worker (no registry: WorkerService alone) running one task held until the gate "drain" opens, so
    that once `begin_stop()` is called it drains, reporting NOT_SERVING, until the test lets the task end."""

    def __init__(self, worker: ToolWorker) -> None:
        self.worker = worker
        self.stopping: asyncio.Task[None] | None = None

    def begin_stop(self) -> asyncio.Task[None]:
        self.stopping = asyncio.create_task(self.worker.stop(grace_seconds=10))
        return self.stopping


@contextlib.asynccontextmanager
async def draining_worker(gates: Gates) -> AsyncIterator[Draining]:
    """A `Draining` worker, holding its task; at exit the task is let go and the worker stopped."""
    worker = ToolWorker(None, port=0)
    await worker.start()
    draining = Draining(worker)
    try:
        async with aio.insecure_channel(worker.address) as channel, asyncio.timeout(10):
            task = pb.Task(task_id="held", capability_name="wait_for")
            task.parameters.add(key="name", value_json='"drain"')
            accepted = await pb_grpc.WorkerServiceStub(channel).ExecuteTask(pb.ExecuteTaskRequest(task=task))
            assert accepted.accepted
        yield draining
    finally:
        gates.open("drain")
        if draining.stopping is None:
            await worker.stop(grace_seconds=0.5)
        else:
            await draining.stopping


async def test_a_draining_worker_reports_not_serving_before_it_exits(gates: Gates) -> None:
    async with draining_worker(gates) as draining:
        worker = draining.worker
        async with aio.insecure_channel(worker.address) as channel, asyncio.timeout(10):
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=WORKER_SERVICE))
            assert (await watch.read()).status == SERVING
            stopping = draining.begin_stop()
            assert (await watch.read()).status == NOT_SERVING
            # The task holds the drain: the worker is still stopping, and it said so first.
            assert not stopping.done() and worker.load == 1
            assert await check(worker.address) == NOT_SERVING
            watch.cancel()
            gates.open("drain")
            await stopping
            assert worker.load == 0


async def test_the_daemon_reports_not_serving_while_its_store_cannot_write(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    await start_worker()
    path = tmp_path / "tasks.db"
    async with OrchestratorServer(registry.address, port=0, store_path=str(path)) as daemon:
        orchestrator = daemon.orchestrator
        async with aio.insecure_channel(daemon.address) as channel, asyncio.timeout(10):
            await orchestrator.wait_for_workers("echo", timeout_seconds=5)
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            assert (await watch.read()).status == SERVING
            outside = sqlite3.connect(path, isolation_level=None)
            try:
                outside.execute("ALTER TABLE tasks RENAME TO tasks_away")  # every write now fails
                with pytest.raises(sqlite3.OperationalError):
                    await orchestrator.execute_task("echo", {"text": "lost"})
                assert (await watch.read()).status == NOT_SERVING
                assert await check(daemon.address, ORCHESTRATOR_SERVICE) == NOT_SERVING
                outside.execute("ALTER TABLE tasks_away RENAME TO tasks")
            finally:
                outside.close()
            handle = await orchestrator.execute_task("echo", {"text": "kept"})
            assert (await watch.read()).status == SERVING
            assert await check(daemon.address, ORCHESTRATOR_SERVICE) == SERVING
            assert await handle.result(timeout_seconds=5) == {"text": "kept"}
            watch.cancel()


SYSTEM = "system-token-0123456789"
TOKENS = f"""
[[principal]]
name = "system/test"
roles = ["worker", "orchestrator", "client"]
token = "{SYSTEM}"
"""


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """A registry, a worker and a daemon that check every caller: their addresses by service."""
    (tmp_path / "tokens.toml").write_text(TOKENS)
    checks = Authenticator(TokenFile(tmp_path / "tokens.toml", check_every_seconds=0))
    bearer.use_token(SYSTEM)  # what the in-process parts send each other
    try:
        async with RegistryServer(port=0, auth=checks) as registry:
            worker = ToolWorker(registry.address, heartbeat_interval_seconds=0.2, auth=checks)
            await worker.start()
            try:
                async with OrchestratorServer(registry.address, port=0, auth=checks) as daemon:
                    yield {
                        REGISTRY_SERVICE: registry.address,
                        WORKER_SERVICE: worker.address,
                        ORCHESTRATOR_SERVICE: daemon.address,
                    }
            finally:
                await worker.stop(grace_seconds=0.5)
    finally:
        bearer.use_token(None)


async def test_health_and_reflection_need_no_credentials_where_other_calls_do(secured: dict[str, str]) -> None:
    assert {HEALTH_SERVICE, REFLECTION_SERVICE} <= OPEN_SERVICES
    for service, address in secured.items():
        assert await check(address) == SERVING, service
        assert await check(address, service) == SERVING, service
        async with asyncio.timeout(10):
            listed, _ = await asyncio.to_thread(describe, address)
        assert service in listed
    async with aio.insecure_channel(secured[ORCHESTRATOR_SERVICE]) as channel:  # no token on this channel
        with pytest.raises(aio.AioRpcError) as refused:
            await pb_grpc.OrchestratorServiceStub(channel).GetQueueStats(empty_pb2.Empty())
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
