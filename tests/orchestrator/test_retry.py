"""Retries: policy, a different worker, recorded attempts, worker death, fencing of superseded attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest

from tests.conftest import Gates, ToolWorker, eventually
from tests.orchestrator.scripted_worker import ScriptedWorker, result
from worker_abstraction import (
    AsyncOrchestrator,
    RegistryServer,
    RetryPolicy,
    TaskFailedError,
    TaskStatus,
    TaskTimeoutError,
    capability,
)
from worker_abstraction._proto import worker_pb2 as pb


class Flaky(ToolWorker):
    """The first call of `flaky` in the whole test process fails; later ones succeed."""

    failures_left: ClassVar[int] = 1

    @capability
    async def flaky(self) -> str:
        if Flaky.failures_left > 0:
            Flaky.failures_left -= 1
            raise RuntimeError("transient trouble")
        return self.worker_id


RETRY_ERRORS = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01, retry_task_errors=True)


async def test_task_error_is_retried_on_another_worker_and_every_attempt_is_recorded(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    Flaky.failures_left = 1
    first, second = await start_worker(Flaky), await start_worker(Flaky)
    async with AsyncOrchestrator(registry.address, retry_policy=RETRY_ERRORS) as orchestrator:
        await orchestrator.wait_for_workers("flaky", count=2, timeout_seconds=5)
        handle = await orchestrator.execute_task("flaky", {})
        winner = await handle.result(timeout_seconds=5)
    assert [a.status for a in handle.attempts] == [TaskStatus.FAILED, TaskStatus.COMPLETED]
    assert handle.attempts[0].worker_id != handle.attempts[1].worker_id == winner
    assert {a.worker_id for a in handle.attempts} == {first.worker_id, second.worker_id}
    assert handle.attempts[0].error_message == "RuntimeError: transient trouble"
    assert [u.status for u in handle.updates][-1] is TaskStatus.COMPLETED


async def test_task_errors_are_not_retried_by_default_nor_when_marked_non_retryable(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("explode", timeout_seconds=5)
        plain = await orchestrator.execute_task("explode", {})
        strict = RetryPolicy(retry_task_errors=True, non_retryable_errors=("ValueError",))
        marked = await orchestrator.execute_task("explode", {}, retry_policy=strict)
        for handle in (plain, marked):
            with pytest.raises(TaskFailedError):
                await handle.result(timeout_seconds=5)
            assert len(handle.attempts) == 1


async def test_attempts_stop_at_max_attempts(registry: RegistryServer, start_worker: Callable[..., Any]) -> None:
    await start_worker()
    policy = RetryPolicy(max_attempts=2, initial_backoff_seconds=0.01, retry_task_errors=True)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("explode", timeout_seconds=5)
        handle = await orchestrator.execute_task("explode", {"message": "always"}, retry_policy=policy)
        with pytest.raises(TaskFailedError) as failed:
            await handle.result(timeout_seconds=5)
    assert failed.value.error_message == "ValueError: always"
    assert [a.number for a in handle.attempts] == [1, 2]


async def test_a_worker_that_dies_mid_task_has_its_task_run_elsewhere(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    doomed = await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("wait_for", timeout_seconds=5)
        handle = await orchestrator.execute_task("wait_for", {"name": "g"})
        assert handle.worker_id == doomed.worker_id
        survivor = await start_worker()
        await orchestrator.wait_for_workers("wait_for", count=2, timeout_seconds=5)
        await doomed.stop(grace_seconds=0)  # it gives the task up, unfinished, and leaves
        gates.open("g")
        assert await handle.result(timeout_seconds=10) == "g"
    assert [a.worker_id for a in handle.attempts] == [doomed.worker_id, survivor.worker_id]
    assert [a.status for a in handle.attempts] == [TaskStatus.FAILED, TaskStatus.COMPLETED]


async def test_updates_of_another_attempt_are_fenced_off(registry: RegistryServer) -> None:
    async def zombie_first(task: pb.Task) -> AsyncIterator[pb.TaskResult]:
        yield result(task, TaskStatus.RUNNING)
        # An update of another attempt of the same task: not the current one, so it never counts.
        yield result(task, TaskStatus.RUNNING, attempt=task.attempt + 1)
        yield result(task, TaskStatus.COMPLETED, output_json='"real"')

    worker = await ScriptedWorker("scripted", "job", zombie_first).start(registry.address)
    try:
        async with AsyncOrchestrator(registry.address) as orchestrator:
            await orchestrator.wait_for_workers("job", timeout_seconds=5)
            handle = await orchestrator.execute_task("job", {})
            assert await handle.result(timeout_seconds=5) == "real"
            assert handle.stale_updates == 1
            assert [u.status for u in handle.updates] == [TaskStatus.RUNNING, TaskStatus.COMPLETED]
    finally:
        await worker.stop()


async def test_a_zombie_result_arriving_during_the_retry_back_off_is_fenced_off(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    zombie = await start_worker()
    policy = RetryPolicy(initial_backoff_seconds=1.0, jitter=0.0)
    async with AsyncOrchestrator(registry.address, retry_policy=policy) as orchestrator:
        await orchestrator.wait_for_workers("wait_for", timeout_seconds=5)
        handle = await orchestrator.execute_task("wait_for", {"name": "z"})
        assert handle.worker_id == zombie.worker_id
        survivor = await start_worker()
        await orchestrator.wait_for_workers("wait_for", count=2, timeout_seconds=5)
        await registry.registry.deregister(zombie.worker_id)  # presumed gone: attempt 1 fails, a retry waits 1s
        await eventually(lambda: handle.status is TaskStatus.PENDING and not handle.worker_id, what="back-off")
        gates.open("z")  # ...and the zombie finishes attempt 1 during the back-off
        await eventually(lambda: handle.stale_updates > 0, what="the zombie's result arrived and was fenced")
        assert not handle.done()
        final = await handle.wait(timeout_seconds=10)
    assert final.status is TaskStatus.COMPLETED and final.attempt == 2
    assert [(a.number, a.status) for a in handle.attempts] == [(1, TaskStatus.FAILED), (2, TaskStatus.COMPLETED)]
    assert handle.attempts[1].worker_id == survivor.worker_id


async def test_a_task_that_never_finds_a_worker_times_out_in_the_queue(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    from tests.orchestrator.test_scheduling import OneSlot

    worker = await start_worker(OneSlot)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("step", timeout_seconds=5)
        blocker = await orchestrator.execute_task("step", {"label": "blocker", "gate": "g"})
        waiting = await orchestrator.execute_task("step", {"label": "late"}, queue_timeout_seconds=0.2)
        with pytest.raises(TaskTimeoutError) as expired:
            await waiting.result(timeout_seconds=5)
        assert expired.value.in_queue and await orchestrator.queue_depths() == {}
        gates.open("g")
        await blocker.result(timeout_seconds=5)
    assert "late" not in worker.ran  # it never reached the worker


async def test_exhausted_tasks_go_to_the_dead_letter_queue_and_can_be_requeued(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    Flaky.failures_left = 2
    await start_worker(Flaky)
    policy = RetryPolicy(max_attempts=2, initial_backoff_seconds=0.01, retry_task_errors=True)
    async with AsyncOrchestrator(registry.address, retry_policy=policy) as orchestrator:
        await orchestrator.wait_for_workers("flaky", timeout_seconds=5)
        handle = await orchestrator.execute_task("flaky", {})
        with pytest.raises(TaskFailedError):
            await handle.result(timeout_seconds=5)
        [letter] = await orchestrator.dead_letters()
        assert letter.task_id == handle.task_id and letter.capability == "flaky"
        assert [a.status for a in letter.attempts] == [TaskStatus.FAILED, TaskStatus.FAILED]
        again = await orchestrator.requeue_dead_letter(handle.task_id)
        assert await again.result(timeout_seconds=5)  # transient trouble is over
        assert await orchestrator.dead_letters() == []
        assert await orchestrator.purge_dead_letters() == 0


async def test_the_same_idempotency_key_gets_the_same_task_back(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    worker = await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        first = await orchestrator.execute_task("echo", {"text": "once"}, idempotency_key="order-42")
        again = await orchestrator.execute_task("echo", {"text": "once"}, idempotency_key="order-42")
        assert again is first
        await first.result(timeout_seconds=5)
        after = await orchestrator.execute_task("echo", {"text": "once"}, idempotency_key="order-42")
        assert after.task_id == first.task_id  # finished tasks are remembered too
        other = await orchestrator.execute_task("echo", {"text": "once"}, idempotency_key="order-43")
        assert other.task_id != first.task_id
        await other.result(timeout_seconds=5)
    assert worker.tasks_received == 2
