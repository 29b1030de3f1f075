"""Listing tasks by worker, time, id prefix, status and capability, over every home a task can have.

One behaviour test, run on each home: the embedded engine's memory, a SQLite store (with one finished task
kept in memory, so the listing must come from the store), a daemon over gRPC (the ListTasks request carries
the filters) and tasks shared on NATS (also read from the shared documents). The answers must be the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.conftest import ToolWorker
from tests.nats_server import NatsServer
from worker_abstraction import AsyncOrchestrator, RegistryServer, RemoteOrchestrator, TaskStatus
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.errors import InvalidParametersError
from worker_abstraction.orchestrator.api import AsyncOrchestratorAPI
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.stores.jetstream import NatsOptions
from worker_abstraction.stores.sqlite import SqliteTaskStore

pytestmark = pytest.mark.timeout(60)
HOMES = ["memory", "sqlite", "daemon", "nats"]
Home = Callable[[], Awaitable[AsyncOrchestratorAPI]]


@pytest.fixture(params=HOMES)
async def home(request: pytest.FixtureRequest, registry: RegistryServer, tmp_path: Path) -> AsyncIterator[Home]:
    """Makes the orchestrator of one home (called once the workers are up)."""
    # Asked for now, not in make(): the NATS server must outlive the orchestrator that uses it.
    nats: NatsServer | None = request.getfixturevalue("nats_server") if request.param == "nats" else None
    async with AsyncExitStack() as stack:

        async def make() -> AsyncOrchestratorAPI:
            if request.param == "memory":
                return await stack.enter_async_context(AsyncOrchestrator(registry.address))
            if request.param == "sqlite":
                store = await SqliteTaskStore(tmp_path / "tasks.db").open()
                stack.push_async_callback(store.close)
                embedded = AsyncOrchestrator(registry.address, task_store=store, keep_finished=1)
                return await stack.enter_async_context(embedded)
            if request.param == "daemon":
                path = str(tmp_path / "d.db")
                server = OrchestratorServer(registry.address, port=0, store_path=path, keep_finished=1)
                await stack.enter_async_context(server)
                return await stack.enter_async_context(RemoteOrchestrator(server.address))
            assert nats is not None
            shared = await PartitionedHome.open(NatsOptions((nats.url,)), replica="filters", partitions=4)
            return await stack.enter_async_context(AsyncOrchestrator(registry.address, home=shared, keep_finished=1))

        yield make


async def ids(orchestrator: AsyncOrchestratorAPI, **filters: Any) -> list[str]:
    return [record.task_id for record in await orchestrator.tasks(**filters)]


async def test_filters_by_worker_time_id_prefix_and_status_find_the_same_tasks_in_every_home(
    home: Home, start_worker: Callable[..., Any]
) -> None:
    first = await start_worker(ToolWorker, name="first")
    second = await start_worker(ToolWorker, name="second")
    orchestrator = await home()
    await orchestrator.wait_for_workers("echo", count=2, timeout_seconds=10)

    async def run(task_id: str, capability: str, worker: Any, **params: Any) -> None:
        handle = await orchestrator.execute_task(capability, params, task_id=task_id, worker_id=worker.worker_id)
        await handle.wait(timeout_seconds=10)

    await run("alpha-1", "echo", first, text="a")
    await run("alpha-2", "explode", second, message="no")
    middle = datetime.now(UTC)
    await run("beta-1", "echo", second, text="b")
    await run("alpha-3", "echo", first, text="c")

    assert await ids(orchestrator) == ["alpha-3", "beta-1", "alpha-2", "alpha-1"]
    assert await ids(orchestrator, worker_id=first.worker_id) == ["alpha-3", "alpha-1"]
    assert await ids(orchestrator, worker_id=second.worker_id) == ["beta-1", "alpha-2"]
    assert await ids(orchestrator, worker_id="nobody") == []
    assert await ids(orchestrator, since=middle) == ["alpha-3", "beta-1"]
    assert await ids(orchestrator, until=middle) == ["alpha-2", "alpha-1"]
    assert await ids(orchestrator, since=middle, until=middle) == []
    assert await ids(orchestrator, since=middle - timedelta(days=1), until=middle + timedelta(days=1)) == [
        "alpha-3",
        "beta-1",
        "alpha-2",
        "alpha-1",
    ]
    assert await ids(orchestrator, task_id_prefix="alpha") == ["alpha-3", "alpha-2", "alpha-1"]
    assert await ids(orchestrator, task_id_prefix="alpha-2") == ["alpha-2"]  # a whole id: that task
    assert await ids(orchestrator, task_id_prefix="ALPHA") == []  # ids are matched exactly, case included
    assert await ids(orchestrator, task_id_prefix="%") == []  # no pattern language
    assert await ids(orchestrator, status=TaskStatus.FAILED, worker_id=second.worker_id) == ["alpha-2"]
    assert await ids(orchestrator, capability="echo", worker_id=second.worker_id, since=middle) == ["beta-1"]

    pages = []
    for offset in range(3):
        page, more = await orchestrator.task_page(task_id_prefix="alpha", limit=1, offset=offset)
        pages.append(([r.task_id for r in page], more))
    assert pages == [(["alpha-3"], True), (["alpha-2"], True), (["alpha-1"], False)]

    with pytest.raises(InvalidParametersError):
        await orchestrator.tasks(since=middle, until=middle - timedelta(seconds=1))
    with pytest.raises(InvalidParametersError):
        await orchestrator.tasks(task_id_prefix="x" * 1000)


async def test_the_daemon_refuses_a_listing_with_every_problem_named(registry: RegistryServer) -> None:
    async with OrchestratorServer(registry.address, port=0) as server, aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        request = pb.ListTasksRequest(worker_id="w" * 300, task_id_prefix="p" * 300)
        request.since.seconds, request.until.seconds = 2_000, 1_000
        with pytest.raises(aio.AioRpcError) as refused:
            await stub.ListTasks(request, timeout=5)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        details = refused.value.details() or ""
        assert "worker_id" in details and "task_id_prefix" in details
        request = pb.ListTasksRequest()
        request.since.seconds, request.until.seconds = 2_000, 1_000
        with pytest.raises(aio.AioRpcError) as reversed_range:
            await stub.ListTasks(request, timeout=5)
        assert reversed_range.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        request = pb.ListTasksRequest()
        request.until.seconds = -5
        with pytest.raises(aio.AioRpcError) as out_of_range:
            await stub.ListTasks(request, timeout=5)
        assert out_of_range.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("home", ["memory", "sqlite", "nats"], indirect=True)
async def test_a_finished_tasks_submission_is_found_with_its_options_in_every_embedded_home(
    home: Home, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    orchestrator = await home()
    assert isinstance(orchestrator, AsyncOrchestrator)
    await orchestrator.wait_for_workers("explode", timeout_seconds=10)
    handle = await orchestrator.execute_task("explode", {"message": "m"}, priority=4, metadata={"k": "v"})
    await handle.wait(timeout_seconds=10)
    await (await orchestrator.execute_task("echo", {"text": "pushes it out of memory"})).wait(timeout_seconds=10)
    submitted = await orchestrator.engine.submission(handle.task_id)
    assert submitted is not None and (submitted.capability, dict(submitted.params)) == ("explode", {"message": "m"})
    assert (submitted.options.priority, dict(submitted.options.metadata)) == (4, {"k": "v"})
    assert await orchestrator.engine.submission("no-such-task") is None
