"""Delayed tasks (`not_before`, `delay_seconds`): accepted and stored at once, visible as waiting, sent to no
worker before their time (played with the manual clock on an in-memory edge), cancelable before they start,
kept across a restart of the engine on its store, and the same through a daemon and for workflows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from tests.conftest import ToolWorker
from tests.orchestrator.fake_edge import FakeEdge, FakeRegistry, fake_worker
from tests.orchestrator.manual_clock import ManualClock
from worker_abstraction import (
    AsyncOrchestrator,
    InvalidTaskOptionsError,
    OrchestratorServer,
    RegistryServer,
    RemoteOrchestrator,
    TaskCanceledError,
    TaskStatus,
)
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.orchestrator.edge.link import WorkerLinks
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.workflows import Workflow

pytestmark = pytest.mark.timeout(30)

Started = tuple[AsyncOrchestrator, FakeEdge, ManualClock]


@pytest.fixture
async def orchestrator() -> AsyncIterator[Callable[[], Awaitable[Started]]]:
    started: list[AsyncOrchestrator] = []

    async def start() -> Started:
        infos = [fake_worker("w1", slots=8)]
        edge, clock = FakeEdge(*infos), ManualClock()
        orchestrator = AsyncOrchestrator(
            "fake-registry:1",
            links=cast(WorkerLinks, edge),
            directory=WorkerDirectory(cast(RegistryClient, FakeRegistry(*infos))),
            clock=clock,
        )
        started.append(orchestrator)
        await orchestrator.wait_for_workers("job", timeout_seconds=5)
        return orchestrator, edge, clock

    yield start
    for orchestrator in started:
        await orchestrator.aclose()


def _sent(edge: FakeEdge) -> list[str]:
    return [attempt.task_id for attempt in edge.sent]


async def test_a_delayed_task_is_stored_and_visible_at_once_and_sent_no_earlier_than_its_time(
    orchestrator: Callable[[], Awaitable[Started]],
) -> None:
    orch, edge, clock = await orchestrator()
    at = datetime.fromtimestamp(clock.wall() + 10, UTC)
    delayed = await orch.execute_task("job", {}, not_before=at)
    now = await orch.execute_task("job", {})
    async with asyncio.timeout(5):
        assert (await edge.next_sent()).task_id == now.task_id  # the same path, at once
    record = await orch.task(delayed.task_id)
    assert (record.status, record.not_before) == (TaskStatus.PENDING, at)
    assert delayed.task_id in {r.task_id for r in await orch.tasks(status=TaskStatus.PENDING)}

    clock.advance(9.99)
    assert delayed.task_id not in _sent(edge)
    clock.advance(0.02)
    async with asyncio.timeout(5):
        attempt = await edge.next_sent()
    assert attempt.task_id == delayed.task_id
    attempt.accept()
    attempt.say(TaskStatus.COMPLETED, output_json='"late"')
    assert await delayed.result(timeout_seconds=5) == "late"


async def test_a_delay_counts_from_acceptance_and_the_later_of_delay_and_not_before_wins(
    orchestrator: Callable[[], Awaitable[Started]],
) -> None:
    orch, edge, clock = await orchestrator()
    early = datetime.fromtimestamp(clock.wall() + 2, UTC)
    handle = await orch.execute_task("job", {}, delay_seconds=5, not_before=early)
    record = await orch.task(handle.task_id)
    assert record.not_before is not None
    assert 4.9 < record.not_before.timestamp() - clock.wall() <= 5.5
    clock.advance(4.8)
    assert _sent(edge) == []
    clock.advance(1.0)
    async with asyncio.timeout(5):
        assert (await edge.next_sent()).task_id == handle.task_id


async def test_a_delayed_task_canceled_before_its_time_never_starts(
    orchestrator: Callable[[], Awaitable[Started]],
) -> None:
    orch, edge, clock = await orchestrator()
    handle = await orch.execute_task("job", {}, delay_seconds=60)
    assert await handle.cancel("changed my mind")
    with pytest.raises(TaskCanceledError, match="changed my mind"):
        await handle.result(timeout_seconds=5)
    clock.advance(120)
    assert _sent(edge) == []
    assert not await handle.cancel("again")


async def test_a_delayed_workflow_starts_no_step_before_its_time_and_cancels_whole(
    orchestrator: Callable[[], Awaitable[Started]],
) -> None:
    orch, edge, clock = await orchestrator()
    flow = Workflow("later")
    flow.step("only", "job", {})
    run = await orch.run_workflow(flow, delay_seconds=30)
    assert run.status is TaskStatus.PENDING
    clock.advance(29)
    assert _sent(edge) == []
    clock.advance(2)
    async with asyncio.timeout(5):
        attempt = await edge.next_sent()
    attempt.accept()
    attempt.say(TaskStatus.COMPLETED, output_json="1")
    assert await run.result(timeout_seconds=5) == {"only": 1}

    canceled = await orch.run_workflow(flow, delay_seconds=30)
    assert await canceled.cancel("not today")
    record = await canceled.wait(timeout_seconds=5)
    assert record.status is TaskStatus.CANCELED and "not today" in record.error
    clock.advance(60)
    assert len(edge.sent) == 1


async def test_bad_delays_are_refused_with_what_to_fix(orchestrator: Callable[[], Awaitable[Started]]) -> None:
    orch, _, _ = await orchestrator()
    for options, says in (
        ({"not_before": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"delay_seconds": -1}, "delay_seconds"),
        ({"delay_seconds": float("nan")}, "delay_seconds"),
        ({"not_before": datetime.now(UTC) + timedelta(days=400)}, "ahead"),
        ({"delay_seconds": 400 * 86400}, "delay_seconds"),
    ):
        with pytest.raises(InvalidTaskOptionsError, match=says):
            await orch.execute_task("job", {}, **options)


async def test_a_delayed_task_survives_a_restart_of_a_daemon_and_runs_on_time_after_it(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    await start_worker(ToolWorker)
    store = str(tmp_path / "tasks.db")
    async with OrchestratorServer(registry.address, port=0, store_path=store) as first:
        remote = RemoteOrchestrator(first.address)
        async with remote:
            await remote.wait_for_workers("echo", timeout_seconds=10)
            handle = await remote.execute_task("echo", {"text": "later"}, delay_seconds=1.0)
            record = await remote.task(handle.task_id)
    assert record.status is TaskStatus.PENDING and record.not_before is not None
    async with OrchestratorServer(registry.address, port=0, store_path=store) as second:
        remote = RemoteOrchestrator(second.address)
        async with remote:
            again = await remote.watch(handle.task_id)
            assert await again.result(timeout_seconds=15) == {"text": "later"}
            record = await remote.task(handle.task_id)
    [attempt] = record.attempts
    assert attempt.started_at >= record.not_before
