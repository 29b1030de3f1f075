"""The relay: a run's updates published to the update log and read back as a handle on another replica."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.nats_server import NatsServer
from worker_abstraction import AsyncOrchestrator, RegistryServer, TaskFailedError, TaskStatus
from worker_abstraction.orchestrator.homes.nats.relay import UpdatePublisher, followed_handle
from worker_abstraction.stores.jetstream import NatsOptions, connect
from worker_abstraction.stores.jetstream.updates import UpdateLog

pytestmark = pytest.mark.timeout(60)


class _NoCancel:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def cancel(self, reason: str) -> bool:
        self.asked.append(reason)
        return True


@pytest.fixture
async def logs(nats_server: NatsServer) -> AsyncIterator[Callable[[], Any]]:
    """Open the update log as one more replica would (its own connection)."""
    opened: list[tuple[UpdateLog, Any]] = []

    async def open_() -> UpdateLog:
        client = await connect(NatsOptions((nats_server.url,)))
        log = await UpdateLog.open(client)
        opened.append((log, client))
        return log

    yield open_
    for log, client in opened:
        await log.close()
        await client.close()


async def test_a_task_run_on_one_replica_is_followed_to_its_result_on_another(
    registry: RegistryServer, start_worker: Callable[..., Any], logs: Callable[[], Any]
) -> None:
    await start_worker()
    runner_log, follower_log = await logs(), await logs()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        run = await orchestrator.execute_task("echo", {"text": "hi", "times": 2})
        publisher = UpdatePublisher(runner_log, run.task_id)
        run.subscribe(publisher)
        owner = _NoCancel()
        followed, feeding = followed_handle(follower_log, run.task_id, "echo", {"text": "hi", "times": 2}, owner)

        assert await followed.result() == {"text": "hihi"} == await run.result()
        await feeding
        await publisher.flushed()
        assert [u.status for u in followed.updates] == [u.status for u in run.updates]
        assert [u.sequence for u in followed.updates] == [1, 2, 3, 4]
        assert followed.worker_id == run.worker_id
        assert [a.number for a in followed.attempts] == [1]
        assert await followed.cancel("too late") is False and owner.asked == []  # it finished
        assert publisher.failed == 0


async def test_a_replica_taking_a_task_over_numbers_its_updates_after_the_last_one_kept(
    registry: RegistryServer, start_worker: Callable[..., Any], logs: Callable[[], Any]
) -> None:
    await start_worker()
    old_runner, new_runner, follower_log = await logs(), await logs(), await logs()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        first = await orchestrator.execute_task("echo", {"text": "a"}, task_id="shared-task")
        # The dead replica got as far as one update of its run into the log.
        await old_runner.publish("shared-task", 1, b"")
        followed, feeding = followed_handle(follower_log, "shared-task", "echo", {"text": "a"}, _NoCancel(), after=1)
        base = await new_runner.last("shared-task")
        assert base == 1
        publisher = UpdatePublisher(new_runner, "shared-task", base)
        first.subscribe(publisher)  # the new holder's run: its updates follow the old ones
        assert await followed.result() == {"text": "a"}
        await feeding
        assert [u.sequence for u in followed.updates] == [2, 3, 4, 5]  # PENDING, RUNNING x2, COMPLETED
        assert followed.updates[-1].status is TaskStatus.COMPLETED


async def test_a_failed_task_fails_the_same_way_where_it_is_followed(
    registry: RegistryServer, start_worker: Callable[..., Any], logs: Callable[[], Any]
) -> None:
    await start_worker()
    runner_log, follower_log = await logs(), await logs()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("explode", timeout_seconds=5)
        run = await orchestrator.execute_task("explode", {"message": "no luck"})
        run.subscribe(UpdatePublisher(runner_log, run.task_id))
        followed, _ = followed_handle(follower_log, run.task_id, "explode", {"message": "no luck"}, _NoCancel())
        with pytest.raises(TaskFailedError) as here:
            await run.result()
        with pytest.raises(TaskFailedError) as there:
            await followed.result()
        assert str(there.value) == str(here.value) and "no luck" in str(there.value)
