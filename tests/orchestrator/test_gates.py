"""Rate limits and concurrency limits, played with the manual clock on an in-memory edge: a limit of N starts
per window is never exceeded over any window, keys are limited apart, a burst is bounded, tasks over a
limit wait (none refused, none lost), and a concurrency key never has more than N in flight, with each
strategy (queue, cancel_newest, cancel_in_progress)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, cast

import pytest

from tests.orchestrator.fake_edge import Attempt, FakeEdge, FakeRegistry, fake_worker
from tests.orchestrator.manual_clock import ManualClock
from worker_abstraction import AsyncOrchestrator, InvalidParametersError, TaskCanceledError, TaskStatus
from worker_abstraction.orchestrator.core.gates import ConcurrencyLimit, Gates, RateLimit
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.orchestrator.edge.link import WorkerLinks
from worker_abstraction.registry.client import RegistryClient

pytestmark = pytest.mark.timeout(60)

Start = Callable[..., Awaitable[tuple[AsyncOrchestrator, FakeEdge, ManualClock]]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    started: list[AsyncOrchestrator] = []

    async def make(
        rates: Iterable[RateLimit] = (), concurrency: Iterable[ConcurrencyLimit] = ()
    ) -> tuple[AsyncOrchestrator, FakeEdge, ManualClock]:
        infos = [fake_worker("w1", slots=1000)]
        edge, clock = FakeEdge(*infos), ManualClock()
        orchestrator = AsyncOrchestrator(
            "fake-registry:1",
            links=cast(WorkerLinks, edge),
            directory=WorkerDirectory(cast(RegistryClient, FakeRegistry(*infos))),
            clock=clock,
            rate_limits=rates,
            concurrency_limits=concurrency,
        )
        started.append(orchestrator)
        await orchestrator.wait_for_workers("job", timeout_seconds=5)
        return orchestrator, edge, clock

    yield make
    for orchestrator in started:
        await orchestrator.aclose()


async def _turns() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def _done(attempt: Attempt) -> None:
    attempt.accept()
    attempt.say(TaskStatus.COMPLETED, output_json="1")


async def _starts_over(edge: FakeEdge, clock: ManualClock, seconds: float, step: float) -> list[tuple[float, str]]:
    """(clock time, task id) of each dispatch while the clock moves on by `step` up to `seconds`; each run
    ends as soon as it starts."""
    seen: list[tuple[float, str]] = []
    elapsed = 0.0
    while True:
        await _turns()
        for attempt in edge.sent[len(seen) :]:
            seen.append((clock.time, attempt.task_id))
            _done(attempt)
        if elapsed >= seconds:
            return seen
        clock.advance(step)
        elapsed += step


def _most_in_any_window(times: list[float], window: float) -> int:
    return max((sum(1 for t in times if start <= t < start + window - 1e-9) for start in times), default=0)


async def test_a_rate_limit_is_never_exceeded_over_any_window_and_no_task_is_lost(start: Start) -> None:
    orch, edge, clock = await start([RateLimit.parse("job", "5/s")])
    handles = [await orch.execute_task("job", {}) for _ in range(30)]
    starts = await _starts_over(edge, clock, 7.0, 0.05)
    times = [t for t, _ in starts]
    assert len(starts) == 30 and len({task for _, task in starts}) == 30
    assert _most_in_any_window(times, 1.0) == 5
    assert times[-1] - times[0] >= 5.0  # 30 starts at 5 per second take five seconds at least
    for handle in handles:
        assert await handle.result(timeout_seconds=5) == 1


async def test_a_burst_bounds_the_starts_back_to_back(start: Start) -> None:
    orch, edge, clock = await start([RateLimit.parse("job", "10/s", burst=2)])
    for _ in range(10):
        await orch.execute_task("job", {})
    starts = await _starts_over(edge, clock, 2.0, 0.01)
    times = [t for t, _ in starts]
    assert times.count(times[0]) == 2  # two at once, then one every tenth of a second
    assert _most_in_any_window(times, 1.0) <= 10 and len(times) == 10


async def test_keys_are_limited_apart(start: Start) -> None:
    orch, edge, clock = await start([RateLimit.parse("job", "1/s", key="fairness")])
    for key in ("a", "a", "a", "b", "b", "b"):
        await orch.execute_task("job", {}, fairness_key=key)
    starts = await _starts_over(edge, clock, 0.5, 0.05)
    assert len(starts) == 2  # one of each key; the others wait for the next second
    waiting = await orch.queue_depths()
    assert sum(waiting["job"].values()) == 4


def test_a_param_key_names_the_argument_s_value() -> None:
    gates = Gates([RateLimit.parse("send", "2/s", key="param:user")])
    assert gates.key_of("send", "", {"user": "ann"}) != gates.key_of("send", "", {"user": "bob"})
    assert gates.key_of("send", "", {"user": "ann", "x": 1}) == gates.key_of("send", "t", {"user": "ann"})
    assert gates.key_of("other", "", {"user": "ann"}) == ""


async def test_a_concurrency_key_limits_each_value_apart(start: Start) -> None:
    orch, edge, _ = await start([], [ConcurrencyLimit("job", 1, key="fairness")])
    first = [await orch.execute_task("job", {}, fairness_key=user) for user in ("ann", "bob")]
    more = await orch.execute_task("job", {}, fairness_key="ann")
    await _turns()
    assert sorted(a.task_id for a in edge.sent) == sorted(h.task_id for h in first)
    assert more.status is TaskStatus.PENDING
    _done(next(a for a in edge.sent if a.task_id == first[0].task_id))
    async with asyncio.timeout(5):
        assert (await _next_new(edge, 2)).task_id == more.task_id


async def _next_new(edge: FakeEdge, already: int) -> Attempt:
    while len(edge.sent) <= already:
        await edge.next_sent()
    return edge.sent[already]


async def test_a_concurrency_limit_never_has_more_than_n_in_flight(start: Start) -> None:
    orch, edge, _ = await start([], [ConcurrencyLimit("job", 2)])
    handles = [await orch.execute_task("job", {}) for _ in range(7)]
    finished = 0
    most = 0
    while finished < 7:
        await _turns()
        running = [a for a in edge.sent if not _ended(a)]
        most = max(most, len(running))
        assert running, "nothing runs while tasks wait"
        _done(running[0])
        finished += 1
    assert most == 2
    assert [await h.result(timeout_seconds=5) for h in handles] == [1] * 7


def _ended(attempt: Attempt) -> bool:
    return attempt.accepted and not attempt.sink.active()


async def test_cancel_newest_cancels_the_task_over_the_limit(start: Start) -> None:
    orch, edge, _ = await start([], [ConcurrencyLimit("job", 1, strategy="cancel_newest")])
    first = await orch.execute_task("job", {})
    second = await orch.execute_task("job", {})
    with pytest.raises(TaskCanceledError, match="concurrency limit"):
        await second.result(timeout_seconds=5)
    await _turns()
    assert [a.task_id for a in edge.sent] == [first.task_id]


async def test_cancel_in_progress_keeps_the_newest(start: Start) -> None:
    orch, edge, _ = await start([], [ConcurrencyLimit("job", 1, strategy="cancel_in_progress")])
    first = await orch.execute_task("job", {})
    async with asyncio.timeout(5):
        running = await edge.next_sent()
    running.accept()
    newer = await orch.execute_task("job", {})
    async with asyncio.timeout(5):
        cancel = await edge.next_cancel()
    assert cancel.task_id == first.task_id and "superseded" in cancel.reason
    running.say(TaskStatus.CANCELED, error_message=cancel.reason)
    with pytest.raises(TaskCanceledError):
        await first.result(timeout_seconds=5)
    async with asyncio.timeout(5):
        assert (await edge.next_sent()).task_id == newer.task_id


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: RateLimit.parse("job", "fast"), "N/UNIT"),
        (lambda: RateLimit.parse("job", "0/s"), "count"),
        (lambda: RateLimit.parse("job", "5/s", key="user"), "param:NAME"),
        (lambda: ConcurrencyLimit("job", 0).check(), "max_in_flight"),
        (lambda: ConcurrencyLimit("job", 1, strategy="drop").check(), "strategy"),
    ],
)
def test_a_limit_that_cannot_work_says_why(make: Callable[[], Any], says: str) -> None:
    with pytest.raises(InvalidParametersError, match=says):
        make()
