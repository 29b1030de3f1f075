"""Task records (get / list), and what a durable store keeps across an orchestrator restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.conftest import Gates
from tests.orchestrator.test_retry import Flaky
from worker_abstraction import (
    AsyncOrchestrator,
    RegistryServer,
    RemoteOrchestrator,
    RetryPolicy,
    TaskExistsError,
    TaskFailedError,
    TaskNotFoundError,
    TaskStatus,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.stores.sqlite import SqliteTaskStore


async def test_finished_and_running_tasks_can_be_read_back_and_listed(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        done = await orchestrator.execute_task("echo", {"text": "a", "times": 2}, idempotency_key="k-1")
        await done.result(timeout_seconds=5)
        failed = await orchestrator.execute_task("explode", {"message": "nope"})
        with pytest.raises(TaskFailedError):
            await failed.result(timeout_seconds=5)
        running = await orchestrator.execute_task("wait_for", {"name": "g"})

        record = await orchestrator.task(done.task_id)
        assert record.status is TaskStatus.COMPLETED and record.output == {"text": "aa"}
        assert record.capability == "echo" and record.params == {"text": "a", "times": 2}
        assert record.idempotency_key == "k-1" and record.submitted_at is not None
        assert [(a.number, a.status) for a in record.attempts] == [(1, TaskStatus.COMPLETED)]
        assert (await orchestrator.task(failed.task_id)).error_message == "ValueError: nope"
        assert (await orchestrator.task(running.task_id)).status in (TaskStatus.PENDING, TaskStatus.RUNNING)

        newest_first = [r.task_id for r in await orchestrator.tasks()]
        assert newest_first == [running.task_id, failed.task_id, done.task_id]
        assert [r.task_id for r in await orchestrator.tasks(status=TaskStatus.FAILED)] == [failed.task_id]
        assert [r.task_id for r in await orchestrator.tasks(capability="echo")] == [done.task_id]
        assert [r.task_id for r in await orchestrator.tasks(limit=1, offset=1)] == [failed.task_id]
        with pytest.raises(TaskNotFoundError):
            await orchestrator.task("no-such-task")
        with pytest.raises(TaskExistsError):
            await orchestrator.execute_task("echo", {"text": "b"}, task_id=running.task_id)
        gates.open("g")
        await running.result(timeout_seconds=5)


async def test_a_restarted_orchestrator_still_knows_finished_tasks_dead_letters_and_keys(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    Flaky.failures_left = 2
    await start_worker(Flaky)
    path = tmp_path / "tasks.db"
    policy = RetryPolicy(max_attempts=2, initial_backoff_seconds=0.01, retry_task_errors=True)

    store = await SqliteTaskStore(path).open()
    async with AsyncOrchestrator(registry.address, task_store=store, retry_policy=policy) as first:
        await first.wait_for_workers("flaky", timeout_seconds=5)
        echoed = await first.execute_task("echo", {"text": "kept"}, idempotency_key="order-1")
        await echoed.result(timeout_seconds=5)
        lettered = await first.execute_task("flaky", {})
        with pytest.raises(TaskFailedError):
            await lettered.result(timeout_seconds=5)
        assert [d.task_id for d in await first.dead_letters()] == [lettered.task_id]
    await store.close()

    store = await SqliteTaskStore(path).open()
    async with AsyncOrchestrator(registry.address, task_store=store) as second:
        record = await second.task(echoed.task_id)
        assert record.status is TaskStatus.COMPLETED and record.output == {"text": "kept"}
        assert (await second.task(lettered.task_id)).dead_lettered
        assert [r.task_id for r in await second.tasks(status=TaskStatus.FAILED)] == [lettered.task_id]
        again = await second.execute_task("echo", {"text": "kept"}, idempotency_key="order-1")
        assert again.task_id == echoed.task_id and again.done()
        assert (await again.wait()).output == {"text": "kept"}

        [letter] = await second.dead_letters()
        assert letter.task_id == lettered.task_id and len(letter.attempts) == 2
        assert letter.options.retry_policy == policy  # requeued as it was submitted
        requeued = await second.requeue_dead_letter(lettered.task_id)
        assert await requeued.result(timeout_seconds=5)
        await second.task(requeued.task_id)
    await store.close()

    store = await SqliteTaskStore(path).open()
    async with AsyncOrchestrator(registry.address, task_store=store) as third:
        assert await third.dead_letters() == []  # the requeue was stored too
    await store.close()


async def test_the_daemon_serves_task_records_and_refuses_bad_pages(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    await start_worker()
    async with OrchestratorServer(registry.address, port=0, store_path=str(tmp_path / "t.db")) as server:
        async with RemoteOrchestrator(server.address) as remote:
            await server.orchestrator.wait_for_workers("echo", timeout_seconds=5)
            handles = [
                await remote.execute_task("echo", {"text": str(i)}, idempotency_key=f"k{i}", retry_policy=RetryPolicy())
                for i in range(5)
            ]
            for handle in handles:
                await handle.result(timeout_seconds=5)
            again = await remote.execute_task("echo", {"text": "0"}, idempotency_key="k0")
            assert again.task_id == handles[0].task_id
            record = await remote.task(handles[2].task_id)
            assert record.status is TaskStatus.COMPLETED and record.output == {"text": "2"}
            seen = [r.task_id for r in await remote.tasks(limit=2)]
            seen += [r.task_id for r in await remote.tasks(limit=2, offset=2)]
            seen += [r.task_id for r in await remote.tasks(limit=2, offset=4)]
            assert seen == [h.task_id for h in reversed(handles)]
            with pytest.raises(TaskNotFoundError):
                await remote.task("nope")
        async with aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            with pytest.raises(aio.AioRpcError) as bad_token:
                await stub.ListTasks(pb.ListTasksRequest(page_token="page two"), timeout=5)
            assert bad_token.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(aio.AioRpcError) as bad_policy:
                request = pb.SubmitTaskRequest(
                    task=pb.Task(capability_name="echo", parameters=[pb.TaskParameter(key="text", value_json='"x"')]),
                    retry_policy=pb.RetryPolicy(max_attempts=0),
                )
                await stub.SubmitTask(request, timeout=5)
            assert bad_policy.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "max_attempts" in (bad_policy.value.details() or "")
