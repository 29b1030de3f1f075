"""The live feed's bounds: rows, browsers, and what a slow browser is sent; the throughput series."""

from __future__ import annotations

import asyncio
import time

import pytest

from worker_abstraction.dashboard.feed import CLOSED, LiveFeed, TooManyClientsError
from worker_abstraction.dashboard.stats import SAMPLES_PER_SECOND, Throughput
from worker_abstraction.exchanges import InputRequest, OutputChunk
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.state import TaskState
from worker_abstraction.types import TaskStatus, TaskUpdate

pytestmark = pytest.mark.timeout(10)


class _Owner:
    async def cancel(self, reason: str) -> bool:
        return False


def task(task_id: str) -> tuple[AsyncTaskHandle, TaskState]:
    state = TaskState(task_id, "echo", {})
    return AsyncTaskHandle(state, _Owner()), state


def update(task_id: str, status: TaskStatus) -> TaskUpdate:
    return TaskUpdate(task_id=task_id, status=status, worker_id="w1", attempt=1)


async def test_rows_follow_their_tasks_and_only_the_latest_are_kept() -> None:
    feed = LiveFeed(max_tasks=3, name_of={"w1": "first"}.get)
    states = []
    for n in range(5):
        handle, state = task(f"t{n}")
        feed.accepted(handle)
        states.append(state)
    assert [r["task_id"] for r in feed.rows()] == ["t4", "t3", "t2"]
    states[4].append(update("t4", TaskStatus.RUNNING))
    states[0].append(update("t0", TaskStatus.COMPLETED))  # no row any more, but counted
    assert feed.rows()[0]["status"] == "RUNNING" and feed.rows()[0]["worker_id"] == "w1"
    assert feed.rows()[0]["worker_name"] == "first" and feed.rows()[1]["worker_name"] == ""  # named as it changes
    completed = feed.throughput.series(time.time() + 1, 3)["completed"]
    assert sum(c or 0 for c in completed) == 1


async def test_a_slow_browser_gets_the_latest_row_of_each_task_then_a_reset_past_its_bound() -> None:
    feed = LiveFeed(queue_limit=3)
    slow = feed.subscribe()
    handle, state = task("a")
    feed.accepted(handle)
    state.append(update("a", TaskStatus.RUNNING))
    state.append(update("a", TaskStatus.COMPLETED))
    event = await slow.next(1)
    assert event is not None and (event.kind, event.data["status"]) == ("task", "COMPLETED")  # coalesced
    assert await slow.next(0.01) is None  # nothing else pending

    for n in range(10):
        feed.accepted(task(f"b{n}")[0])
    event = await slow.next(1)
    assert event is not None and event.kind == "reset"  # the backlog was dropped for one re-read
    assert slow.dropped >= 1


async def test_browsers_past_the_bound_are_refused_and_close_ends_every_stream() -> None:
    feed = LiveFeed(max_clients=2)
    first, second = feed.subscribe(), feed.subscribe()
    with pytest.raises(TooManyClientsError):
        feed.subscribe()
    second.close()
    third = feed.subscribe()
    waiting = asyncio.create_task(first.next(5))
    await asyncio.sleep(0)
    feed.close()
    assert await asyncio.wait_for(waiting, 1) is CLOSED
    assert await third.next(1) is CLOSED
    assert feed.clients == 0


def test_throughput_counts_per_second_with_bounded_latency_samples() -> None:
    stats = Throughput(window_seconds=5)
    for n in range(SAMPLES_PER_SECOND * 3):
        stats.record(100.5, TaskStatus.COMPLETED, n / 1000)
    stats.record(101.2, TaskStatus.FAILED, 2.0)
    stats.record(90.0, TaskStatus.COMPLETED, 0.5)  # the clock stepped back: counted in the latest second
    series = stats.series(102.0, 3)
    assert series["t"] == [99, 100, 101]
    assert series["completed"] == [0, SAMPLES_PER_SECOND * 3, 1]
    assert series["failed"] == [0, 0, 1]
    assert series["p50"][0] is None and series["p95"][1] is not None and 0 < series["p95"][1] < 0.6
    for second in range(200, 220):
        stats.record(second, TaskStatus.COMPLETED, 0.1)
    assert stats.series(220.0)["completed"] == [1] * 5  # only the window is kept


async def test_streamed_chunks_publish_nothing_and_a_question_keeps_the_rows_progress() -> None:
    feed = LiveFeed()
    browser = feed.subscribe()
    handle, state = task("asks")
    feed.accepted(handle)
    assert (await browser.next(1)) is not None  # its first row
    state.append(
        TaskUpdate("asks", TaskStatus.RUNNING, worker_id="w1", attempt=1, progress=0.4, progress_message="half")
    )
    assert (await browser.next(1)) is not None
    for index in range(1, 4):
        state.append(TaskUpdate("asks", TaskStatus.RUNNING, attempt=1, chunk=OutputChunk(index, "token")))
    assert await browser.next(0.01) is None  # the chunks are streamed by their own route, not as rows
    state.append(TaskUpdate("asks", TaskStatus.INPUT_REQUIRED, attempt=1, input_request=InputRequest("q1", "go?")))
    event = await browser.next(1)
    assert event is not None and event.data["status"] == "INPUT_REQUIRED"
    assert (event.data["progress"], event.data["message"]) == (0.4, "half")
