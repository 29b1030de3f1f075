"""The orchestrator daemon's service and its remote client: one shared queue, the same calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import Gates
from tests.orchestrator.test_scheduling import OneSlot
from worker_abstraction import (
    InvalidParametersError,
    NoWorkerError,
    Orchestrator,
    OrchestratorServer,
    OrchestratorUnavailableError,
    QueueFullError,
    RegistryServer,
    RemoteOrchestrator,
    TaskFailedError,
    TaskStatus,
)


@pytest.fixture
async def daemon(registry: RegistryServer) -> AsyncIterator[OrchestratorServer]:
    server = OrchestratorServer(registry.address, port=0, max_queued=2)
    await server.start()
    yield server
    await server.stop(None)


async def test_remote_submit_streams_the_same_updates(
    daemon: OrchestratorServer, start_worker: Callable[..., Any]
) -> None:
    worker = await start_worker()
    await daemon.orchestrator.wait_for_workers("echo", timeout_seconds=5)
    async with RemoteOrchestrator(daemon.address) as remote:
        handle = await remote.execute_task("echo", {"text": "hi", "times": 2})
        assert handle.worker_id == worker.worker_id
        statuses = [u.status async for u in handle]
        assert statuses == [TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.RUNNING, TaskStatus.COMPLETED]
        assert await handle.result(timeout_seconds=5) == {"text": "hihi"}
        failing = await remote.execute_task("explode", {"message": "remote boom"})
        with pytest.raises(TaskFailedError) as failed:
            await failing.result(timeout_seconds=5)
        assert failed.value.error_message == "ValueError: remote boom"


async def test_remote_errors_keep_their_names(daemon: OrchestratorServer, start_worker: Callable[..., Any]) -> None:
    await start_worker()
    await daemon.orchestrator.wait_for_workers("echo", timeout_seconds=5)
    async with RemoteOrchestrator(daemon.address) as remote:
        with pytest.raises(InvalidParametersError):
            await remote.execute_task("echo", {"text": 5})
        with pytest.raises(NoWorkerError):
            await remote.execute_task("no_such_capability", {})


async def test_the_shared_queue_is_visible_and_bounded(
    daemon: OrchestratorServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker(OneSlot)
    await daemon.orchestrator.wait_for_workers("step", timeout_seconds=5)
    async with RemoteOrchestrator(daemon.address) as remote:
        blocker = await remote.execute_task("step", {"label": "blocker", "gate": "g"})
        waiting = [await remote.execute_task("step", {"label": str(i)}, priority=i) for i in range(2)]
        assert all(h.worker_id == "" for h in waiting)
        assert await remote.queue_depths() == {"step": {1: 1, 0: 1}}
        with pytest.raises(QueueFullError):
            await remote.execute_task("step", {"label": "refused"})
        gates.open("g")
        assert [await h.result(timeout_seconds=5) for h in (blocker, *waiting)] == ["blocker", "0", "1"]
        assert await remote.queue_depths() == {}


async def test_unreachable_daemon_is_a_named_error() -> None:
    async with RemoteOrchestrator("127.0.0.1:1") as remote:
        with pytest.raises(OrchestratorUnavailableError):
            await remote.queue_depths()


async def test_dead_letters_through_the_daemon_and_wa_dlq(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    from worker_abstraction import RetryPolicy
    from worker_abstraction.cli.main import main as wa

    await start_worker()
    policy = RetryPolicy(max_attempts=2, initial_backoff_seconds=0.01, retry_task_errors=True)
    async with OrchestratorServer(registry.address, port=0, retry_policy=policy) as daemon:
        await daemon.orchestrator.wait_for_workers("explode", timeout_seconds=5)
        async with RemoteOrchestrator(daemon.address) as remote:
            handle = await remote.execute_task("explode", {"message": "always"})
            with pytest.raises(TaskFailedError):
                await handle.result(timeout_seconds=5)
            [letter] = await remote.dead_letters()
            assert letter.task_id == handle.task_id and letter.params == {"message": "always"}
            assert [a.status for a in letter.attempts] == [TaskStatus.FAILED, TaskStatus.FAILED]
            assert await asyncio.to_thread(wa, ["dlq", "list", "--orchestrator", daemon.address]) == 0
            again = await remote.requeue_dead_letter(handle.task_id)
            assert again.task_id != handle.task_id
            await again.wait(timeout_seconds=5)
            assert len(await remote.dead_letters()) == 1  # it failed for good again
            assert await asyncio.to_thread(wa, ["dlq", "purge", "--orchestrator", daemon.address]) == 0
            assert await remote.dead_letters() == []
            assert await asyncio.to_thread(wa, ["dlq", "requeue", "nope", "--orchestrator", daemon.address]) == 2


async def test_the_blocking_orchestrator_connects_to_a_daemon_with_the_same_calls(
    daemon: OrchestratorServer, start_worker: Callable[..., Any]
) -> None:
    worker = await start_worker()

    def script() -> tuple[Any, ...]:
        with Orchestrator.connect(daemon.address) as orchestrator:
            [seen] = orchestrator.wait_for_workers("echo", timeout_seconds=5)
            handle = orchestrator.execute_task("echo", {"text": "daemon"})
            output = handle.result(timeout_seconds=5)
            batch = orchestrator.execute_many("echo", [{"text": "a"}, {"text": "b"}])
            outputs = sorted((h.result() for h in batch), key=str)
            record = orchestrator.task(handle.task_id)
            health = orchestrator.worker_health()
            return seen, output, outputs, record, health, orchestrator.queue_depths(), orchestrator.dead_letters()

    seen, output, outputs, record, health, depths, letters = await asyncio.to_thread(script)
    assert seen.worker_id == worker.worker_id and output == {"text": "daemon"}
    assert outputs == [{"text": "a"}, {"text": "b"}]
    assert record.status is TaskStatus.COMPLETED and record.output == {"text": "daemon"}
    assert [h.worker.worker_id for h in health] == [worker.worker_id]
    assert depths == {} and letters == []
