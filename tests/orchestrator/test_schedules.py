"""Schedules on the engine in this process, played with the manual clock on an in-memory edge: an interval
and a cron schedule fire on time and each occurrence once (its run's id made from it), the overlap and
missed-run policies, pause and resume (never firing at once unless asked), trigger, and a restart on a
SQLite store after a downtime."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from tests.orchestrator.fake_edge import FakeEdge, FakeRegistry, fake_worker
from tests.orchestrator.manual_clock import ManualClock
from worker_abstraction import AsyncOrchestrator, InvalidParametersError, TaskStatus
from worker_abstraction.errors import ScheduleExistsError, ScheduleNotFoundError
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.orchestrator.edge.link import WorkerLinks
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.schedules import Schedule, ScheduleInfo, ScheduleState
from worker_abstraction.stores.sqlite import SqliteTaskStore

pytestmark = pytest.mark.timeout(30)

Start = Callable[..., Awaitable[tuple[AsyncOrchestrator, FakeEdge]]]


@pytest.fixture
def clock() -> ManualClock:
    clock = ManualClock()
    # Whole minutes on the wall clock: occurrences fall where the test expects them.
    clock.advance(60 - clock.wall() % 60)
    return clock


@pytest.fixture
async def start(clock: ManualClock) -> AsyncIterator[Start]:
    started: list[AsyncOrchestrator] = []
    stores: list[SqliteTaskStore] = []

    async def make(store: Path | None = None) -> tuple[AsyncOrchestrator, FakeEdge]:
        infos = [fake_worker("w1", slots=16)]
        edge = FakeEdge(*infos)
        for opened in stores:  # (one store, one orchestrator: the one before it stops first)
            await opened.close()
        stores.clear()
        task_store = await SqliteTaskStore(str(store)).open() if store is not None else None
        if task_store is not None:
            stores.append(task_store)
        orchestrator = AsyncOrchestrator(
            "fake-registry:1",
            links=cast(WorkerLinks, edge),
            directory=WorkerDirectory(cast(RegistryClient, FakeRegistry(*infos))),
            clock=clock,
            task_store=task_store,
        )
        started.append(orchestrator)
        await orchestrator.wait_for_workers("job", timeout_seconds=5)
        return orchestrator, edge

    yield make
    for orchestrator in started:
        await orchestrator.aclose()
    for opened in stores:
        await opened.close()


def _at(clock: ManualClock, seconds: float = 0) -> datetime:
    return datetime.fromtimestamp(clock.wall() + seconds, UTC)


async def _settled(orch: AsyncOrchestrator, name: str, occurrence: datetime) -> ScheduleInfo:
    """The schedule once its timetable went past `occurrence` (its firing has no event of its own)."""
    async with asyncio.timeout(5):
        while True:
            info = await orch.schedule(name)
            if info.state.last_occurrence is not None and info.state.last_occurrence >= occurrence:
                return info
            await asyncio.sleep(0.005)


async def _turns() -> None:
    """Let the loop run whatever is ready (a firing that should not happen would happen here)."""
    for _ in range(20):
        await asyncio.sleep(0)


def _ids(edge: FakeEdge) -> list[str]:
    return [attempt.task_id for attempt in edge.sent]


async def test_an_interval_schedule_fires_each_occurrence_once_under_an_id_made_from_it(
    start: Start, clock: ManualClock
) -> None:
    orch, edge = await start()
    info = await orch.add_schedule(Schedule("tick", "job", every_seconds=10, start_at=_at(clock)))
    first = _at(clock, 10)
    assert info.next_occurrence == first and info.state.fired == 0
    clock.advance(9.9)
    await _turns()
    assert _ids(edge) == []
    clock.advance(0.1)
    async with asyncio.timeout(5):
        sent = await edge.next_sent()
    assert sent.task_id == f"tick@{first:%Y%m%dT%H%M%SZ}"
    sent.accept()
    sent.say(TaskStatus.COMPLETED, output_json="1")
    await (await orch.watch(sent.task_id)).wait(timeout_seconds=5)
    clock.advance(10)
    async with asyncio.timeout(5):
        again = await edge.next_sent()
    assert again.task_id == f"tick@{_at(clock):%Y%m%dT%H%M%SZ}"
    info = await _settled(orch, "tick", _at(clock))
    assert (info.state.fired, info.state.skipped, info.next_occurrence) == (2, 0, _at(clock, 10))
    assert (await orch.task(again.task_id)).status is TaskStatus.PENDING  # sent, not yet accepted


async def test_an_occurrence_that_cannot_be_submitted_is_told_in_last_error(start: Start, clock: ManualClock) -> None:
    orch, _ = await start()
    await orch.add_schedule(Schedule("wrong", "job", {"n": 1}, every_seconds=10, start_at=_at(clock)))
    clock.advance(10)
    info = await _settled(orch, "wrong", _at(clock))
    assert "unknown parameter 'n'" in info.state.last_error and info.state.fired == 0


async def test_a_cron_schedule_fires_in_its_time_zone(start: Start, clock: ManualClock) -> None:
    orch, edge = await start()
    info = await orch.add_schedule(Schedule("minutely", "job", cron="* * * * *", timezone="Asia/Kolkata"))
    assert info.next_occurrence == _at(clock, 60)
    clock.advance(60)
    async with asyncio.timeout(5):
        assert (await edge.next_sent()).task_id == f"minutely@{_at(clock):%Y%m%dT%H%M%SZ}"


async def test_overlap_skip_passes_over_an_occurrence_while_the_previous_run_goes(
    start: Start, clock: ManualClock
) -> None:
    orch, edge = await start()
    await orch.add_schedule(Schedule("slow", "job", every_seconds=10, start_at=_at(clock)))
    clock.advance(10)
    async with asyncio.timeout(5):
        running = await edge.next_sent()
    running.accept()
    clock.advance(10)
    info = await _settled(orch, "slow", _at(clock))
    assert (info.state.fired, info.state.skipped, _ids(edge)) == (1, 1, [running.task_id])
    running.say(TaskStatus.COMPLETED, output_json="1")
    await (await orch.watch(running.task_id)).wait(timeout_seconds=5)
    clock.advance(10)
    async with asyncio.timeout(5):
        assert (await edge.next_sent()).task_id == f"slow@{_at(clock):%Y%m%dT%H%M%SZ}"


async def test_overlap_buffer_one_runs_one_waiting_occurrence_when_the_previous_ends(
    start: Start, clock: ManualClock
) -> None:
    orch, edge = await start()
    await orch.add_schedule(Schedule("buf", "job", every_seconds=10, start_at=_at(clock), overlap="buffer_one"))
    clock.advance(10)
    async with asyncio.timeout(5):
        running = await edge.next_sent()
    running.accept()
    clock.advance(10)
    second = _at(clock)
    await _settled(orch, "buf", second)
    clock.advance(10)
    third = _at(clock)
    info = await _settled(orch, "buf", third)
    assert _ids(edge) == [running.task_id] and info.state.skipped == 1  # the second gave way to the third
    running.say(TaskStatus.COMPLETED, output_json="1")
    async with asyncio.timeout(5):
        buffered = await edge.next_sent()
    assert buffered.task_id == f"buf@{third:%Y%m%dT%H%M%SZ}"


async def test_overlap_allow_all_runs_beside_the_previous_run(start: Start, clock: ManualClock) -> None:
    orch, edge = await start()
    await orch.add_schedule(Schedule("all", "job", every_seconds=10, start_at=_at(clock), overlap="allow_all"))
    for _ in range(3):
        clock.advance(10)
        async with asyncio.timeout(5):
            (await edge.next_sent()).accept()
    assert len(set(_ids(edge))) == 3


async def test_pause_fires_nothing_and_resume_never_fires_what_passed_unless_asked(
    start: Start, clock: ManualClock
) -> None:
    orch, edge = await start()
    await orch.add_schedule(Schedule("p", "job", every_seconds=10, start_at=_at(clock), overlap="allow_all"))
    paused = await orch.pause_schedule("p")
    assert paused.schedule.paused and paused.next_occurrence is None
    clock.advance(45)
    resumed = await orch.resume_schedule("p")
    assert resumed.next_occurrence == _at(clock, 5) and _ids(edge) == []
    clock.advance(5)
    async with asyncio.timeout(5):
        assert (await edge.next_sent()).task_id == f"p@{_at(clock):%Y%m%dT%H%M%SZ}"
    await orch.pause_schedule("p")
    clock.advance(3)
    await orch.resume_schedule("p", run_now=True)
    async with asyncio.timeout(5):
        assert (await edge.next_sent()).task_id.startswith("p@manual-")
    info = await orch.schedule("p")
    assert info.state.fired == 2 and info.state.skipped == 0


async def test_trigger_runs_once_now_and_remove_stops_the_schedule(start: Start, clock: ManualClock) -> None:
    orch, edge = await start()
    await orch.add_schedule(Schedule("t", "job", every_seconds=3600))
    handle = await orch.trigger_schedule("t")
    async with asyncio.timeout(5):
        assert (await edge.next_sent()).task_id == handle.task_id
    assert [info.name for info in await orch.schedules()] == ["t"]
    assert await orch.remove_schedule("t") and not await orch.remove_schedule("t")
    with pytest.raises(ScheduleNotFoundError):
        await orch.schedule("t")
    clock.advance(7200)
    assert _ids(edge) == [handle.task_id]


async def test_a_bad_schedule_lists_every_problem_and_a_taken_name_is_refused(start: Start) -> None:
    orch, _ = await start()
    with pytest.raises(InvalidParametersError) as caught:
        await orch.add_schedule(
            Schedule("bad name!", "job", cron="61 * * * *", timezone="Nowhere/City", overlap="sometimes")
        )
    text = str(caught.value)
    for says in ("name", "cron", "timezone", "overlap"):
        assert says in text, text
    with pytest.raises(InvalidParametersError, match="one of the two"):
        await orch.add_schedule(Schedule("both", "job", cron="* * * * *", every_seconds=5))
    await orch.add_schedule(Schedule("once", "job", every_seconds=5))
    with pytest.raises(ScheduleExistsError):
        await orch.add_schedule(Schedule("once", "job", every_seconds=5))


@pytest.mark.parametrize(("missed", "expected"), [("skip", 0), ("latest", 1), ("all", 3)])
async def test_occurrences_missed_while_no_orchestrator_was_up_follow_the_missed_policy(
    start: Start, clock: ManualClock, tmp_path: Path, missed: str, expected: int
) -> None:
    store = tmp_path / "tasks.db"
    orch, _ = await start(store)
    schedule = Schedule(
        "m", "job", every_seconds=60, start_at=_at(clock), overlap="allow_all", missed=missed, grace_seconds=200
    )
    await orch.add_schedule(schedule)
    await orch.aclose()
    clock.advance(330)  # five occurrences pass with no orchestrator up; three of them within the grace
    again, edge = await start(store)
    info = await _settled(again, "m", _at(clock, -30))
    await asyncio.sleep(0)
    ran = sorted(_ids(edge))
    assert len(ran) == expected and info.state.fired == expected
    assert info.state.skipped == 5 - expected
    if missed == "latest":
        assert ran == [f"m@{_at(clock, -30):%Y%m%dT%H%M%SZ}"]
    if missed == "all":
        assert ran == [f"m@{_at(clock, -s):%Y%m%dT%H%M%SZ}" for s in (150, 90, 30)]


def test_an_interval_without_start_at_counts_from_the_creation() -> None:
    daily = Schedule("daily", "job", every_seconds=86_400)
    state = ScheduleState(created_at=datetime(2026, 12, 7, 14, 50, tzinfo=UTC))
    assert state.timing(daily).after(state.since(daily)) == datetime(2026, 12, 8, 14, 50, tzinfo=UTC)


async def test_unpausing_through_update_never_fires_what_passed_while_paused(start: Start, clock: ManualClock) -> None:
    orch, edge = await start()
    beat = Schedule("u", "job", every_seconds=10, start_at=_at(clock), overlap="allow_all", missed="all")
    await orch.add_schedule(beat)
    await orch.pause_schedule("u")
    clock.advance(45)
    info = await orch.update_schedule(dataclasses.replace(beat, paused=False))
    await _turns()
    assert _ids(edge) == [] and info.next_occurrence == _at(clock, 5)


async def test_two_triggers_at_once_are_two_runs(start: Start) -> None:
    orch, _ = await start()
    await orch.add_schedule(Schedule("twice", "job", every_seconds=3600))
    first, second = await orch.trigger_schedule("twice"), await orch.trigger_schedule("twice")
    assert first.task_id != second.task_id and (await orch.schedule("twice")).state.fired == 2
