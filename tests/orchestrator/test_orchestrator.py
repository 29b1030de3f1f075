"""The orchestrator end to end in one process: discovery, dispatch, streaming, errors, the sync twin."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.conftest import Gates, eventually
from worker_abstraction import (
    AsyncOrchestrator,
    InvalidParametersError,
    NoWorkerError,
    Orchestrator,
    RegistryServer,
    TaskFailedError,
    TaskStatus,
    TaskTimeoutError,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.registry.service import Registry
from worker_abstraction.registry.servicer import RegistryServicer
from worker_abstraction.stores import MemoryWorkerStore


async def test_task_streams_to_completion_and_handle_knows_its_worker(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    worker = await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        handle = await orchestrator.execute_task("echo", {"text": "hi", "times": 3})
        assert handle.worker_id == worker.worker_id and handle.worker_address == worker.address
        seen = [update async for update in handle]
        assert [u.status for u in seen] == [
            TaskStatus.PENDING,
            TaskStatus.RUNNING,
            TaskStatus.RUNNING,
            TaskStatus.COMPLETED,
        ]
        assert await handle.result() == {"text": "hihihi"}
        replay = [u.sequence async for u in handle]
        assert replay == [1, 2, 3, 4]


async def test_task_ids_are_unique_hex_and_begin_with_the_millisecond_they_were_made(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        before = time.time_ns() // 1_000_000
        handles = [await orchestrator.execute_task("echo", {"text": "x", "times": 1}) for _ in range(200)]
        after = time.time_ns() // 1_000_000
        ids = [handle.task_id for handle in handles]
        assert len(set(ids)) == len(ids)
        assert all(len(task_id) == 32 and int(task_id, 16) >= 0 and task_id == task_id.lower() for task_id in ids)
        made = [int(task_id[:12], 16) for task_id in ids]  # so a store's index on them grows at one end
        assert before <= made[0] and made == sorted(made) and made[-1] <= after
        await asyncio.gather(*(handle.result() for handle in handles))


async def test_named_errors(registry: RegistryServer, start_worker: Callable[..., Any]) -> None:
    await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        with pytest.raises(NoWorkerError) as no_worker:
            await orchestrator.execute_task("unsupported_tool", {})
        assert "echo" in str(no_worker.value)  # names what live workers do offer
        with pytest.raises(InvalidParametersError) as invalid:
            await orchestrator.execute_task("echo", {"text": 1, "times": "2", "colour": "red"})
        assert len(invalid.value.problems) == 3  # every problem, before anything reached a worker
        failing = await orchestrator.execute_task("explode", {"message": "nope"})
        with pytest.raises(TaskFailedError) as failed:
            await failing.result()
        assert failed.value.error_message == "ValueError: nope"


async def test_result_timeout_is_a_named_error(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("wait_for", timeout_seconds=5)
        handle = await orchestrator.execute_task("wait_for", {"name": "slow"})
        with pytest.raises(TaskTimeoutError):
            await handle.result(timeout_seconds=0.2)
        gates.open("slow")
        assert await handle.result(timeout_seconds=5) == "slow"


async def test_least_loaded_worker_gets_the_next_task(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    first, second = await start_worker(), await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("wait_for", count=2, timeout_seconds=5)
        handles = [await orchestrator.execute_task("wait_for", {"name": "hold"}) for _ in range(6)]
        assert Counter(h.worker_id for h in handles) == {first.worker_id: 3, second.worker_id: 3}
        gates.open("hold")
        assert [await h.result(timeout_seconds=5) for h in handles] == ["hold"] * 6


async def test_workers_that_leave_disappear_from_the_view(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    worker = await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        await worker.stop(grace_seconds=0.1)

        async def gone() -> bool:
            return await orchestrator.workers() == []

        await eventually(gone, what="worker left the view")
        with pytest.raises(NoWorkerError):
            await orchestrator.execute_task("echo", {"text": "x"})


async def test_sync_facade_runs_the_same_flow(registry: RegistryServer, start_worker: Callable[..., Any]) -> None:
    await start_worker()

    def script() -> tuple[list[TaskStatus], Any]:
        with Orchestrator(registry.address) as orchestrator:
            orchestrator.wait_for_workers("echo", timeout_seconds=5)
            handle = orchestrator.execute_task("echo", {"text": "sync"})
            statuses = [update.status for update in handle]
            return statuses, handle.result()

    statuses, output = await asyncio.to_thread(script)
    assert statuses[-1] is TaskStatus.COMPLETED and output == {"text": "sync"}


class SeedOnlyRegistryServicer(RegistryServicer):
    """Our registry with the added RPCs switched off, as a registry built from the seed's proto would be."""

    async def WatchWorkers(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        yield  # pragma: no cover

    async def DeregisterWorker(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")

    async def HeartbeatStream(self, request_iterator: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        yield  # pragma: no cover

    async def WorkerHeartbeat(self, request: Any, context: Any) -> Any:
        response = await super().WorkerHeartbeat(request, context)
        return pb.HeartbeatResponse(success=response.success, message=response.message)  # no must_register


async def test_orchestrator_polls_a_registry_without_watch(start_worker: Callable[..., Any]) -> None:
    seed_registry = Registry(MemoryWorkerStore(), ttl_seconds=5)
    server = aio.server()
    pb_grpc.add_RegistryServiceServicer_to_server(SeedOnlyRegistryServicer(seed_registry), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        worker = await start_worker(registry=f"127.0.0.1:{port}")
        await worker.wait_registered()
        directory = WorkerDirectory(RegistryClient(f"127.0.0.1:{port}"), poll_interval_seconds=0.1)
        async with AsyncOrchestrator(f"127.0.0.1:{port}", directory=directory) as orchestrator:
            await orchestrator.wait_for_workers("echo", timeout_seconds=5)
            handle = await orchestrator.execute_task("echo", {"text": "polled"})
            assert await handle.result(timeout_seconds=5) == {"text": "polled"}
            assert directory.mode == "poll"
            # The seed registry forgets the worker: success=false on its next heartbeat makes it register again.
            for record in await seed_registry.store.all():
                await seed_registry.store.remove(record.info.worker_id)

            async def registered_again() -> bool:
                return bool(await seed_registry.store.get(worker.worker_id))

            await eventually(registered_again, what="worker registered again after success=false")
    finally:
        await server.stop(None)
