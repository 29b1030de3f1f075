"""A task run's edges, played on an in-memory edge with the manual clock: no sockets, no waiting on time.

Busy and unreachable workers, a zombie, a dispatch nobody answers, and a cancel nobody confirms.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest

from tests.orchestrator.fake_edge import FakeEdge, FakeRegistry, fake_worker
from tests.orchestrator.manual_clock import ManualClock
from worker_abstraction import AsyncOrchestrator, RetryPolicy, TaskCanceledError, TaskStatus, TaskTimeoutError
from worker_abstraction.orchestrator.core.run import (
    CANCEL_CONFIRM_SECONDS,
    CANCEL_RESEND_SECONDS,
    DEADLINE_SLACK_SECONDS,
)
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.orchestrator.edge.dispatch import Answer, CancelAnswer
from worker_abstraction.orchestrator.edge.follow import Reach
from worker_abstraction.orchestrator.edge.link import WorkerLinks
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.types import WorkerState

pytestmark = pytest.mark.timeout(30)

Started = tuple[AsyncOrchestrator, FakeEdge, ManualClock]


@pytest.fixture
async def orchestrator() -> AsyncIterator[Callable[[int], Awaitable[Started]]]:
    """An orchestrator whose workers (w1, w2, ...) are played by the test through a `FakeEdge`."""
    started: list[AsyncOrchestrator] = []

    async def start(workers: int) -> Started:
        infos = [fake_worker(f"w{n}") for n in range(1, workers + 1)]
        edge, clock = FakeEdge(*infos), ManualClock()
        orchestrator = AsyncOrchestrator(
            "fake-registry:1",
            links=cast(WorkerLinks, edge),
            directory=WorkerDirectory(cast(RegistryClient, FakeRegistry(*infos))),
            clock=clock,
            retry_policy=RetryPolicy(max_attempts=3, initial_backoff_seconds=1.0),
        )
        started.append(orchestrator)
        await orchestrator.wait_for_workers("job", count=workers, timeout_seconds=5)
        return orchestrator, edge, clock

    yield start
    for orchestrator in started:
        await orchestrator.aclose()


async def test_a_busy_worker_does_not_run_the_attempt_and_its_number_goes_to_the_next_worker(
    orchestrator: Callable[[int], Awaitable[Started]],
) -> None:
    orch, edge, _ = await orchestrator(2)
    handle = await orch.execute_task("job", {})
    async with asyncio.timeout(5):
        refused = await edge.next_sent()
        refused.refuse(Answer.BUSY)
        sent = await edge.next_sent()
    assert (sent.number, sent.worker_id) == (refused.number, next(w for w in ("w1", "w2") if w != refused.worker_id))
    sent.accept()
    sent.say(TaskStatus.COMPLETED, output_json='"done"')
    assert await handle.result(timeout_seconds=5) == "done"
    assert [(a.number, a.worker_id, a.status) for a in handle.attempts] == [(1, sent.worker_id, TaskStatus.COMPLETED)]


async def test_an_unreachable_worker_fails_its_attempt_and_the_next_worker_gets_a_new_number(
    orchestrator: Callable[[int], Awaitable[Started]],
) -> None:
    orch, edge, _ = await orchestrator(2)
    handle = await orch.execute_task("job", {})
    async with asyncio.timeout(5):
        unreachable = await edge.next_sent()
        unreachable.refuse(Answer.UNREACHABLE, "connection refused")
        sent = await edge.next_sent()
    assert (sent.number, sent.worker_id) == (2, next(w for w in ("w1", "w2") if w != unreachable.worker_id))
    sent.accept()
    sent.say(TaskStatus.COMPLETED, output_json="1")
    assert await handle.result(timeout_seconds=5) == 1
    first, second = handle.attempts
    assert (first.number, first.worker_id, first.status) == (1, unreachable.worker_id, TaskStatus.FAILED)
    assert (second.number, second.worker_id, second.status) == (2, sent.worker_id, TaskStatus.COMPLETED)


async def test_a_zombie_that_lets_the_deadline_pass_in_silence_fails_the_task_and_is_suspected(
    orchestrator: Callable[[int], Awaitable[Started]],
) -> None:
    orch, edge, clock = await orchestrator(1)
    handle = await orch.execute_task("job", {}, timeout_seconds=10)
    async with asyncio.timeout(5):
        sent = await edge.next_sent()
    sent.accept()
    sent.say(TaskStatus.RUNNING)
    edge.reach[sent.address] = (Reach.SILENT, "DEADLINE_EXCEEDED")  # and its probes go unanswered
    clock.advance(10 + DEADLINE_SLACK_SECONDS - 0.1)
    assert not handle.done()  # the worker's own deadline, then the slack: still its to end
    clock.advance(0.2)
    with pytest.raises(TaskTimeoutError):
        await handle.result(timeout_seconds=5)
    [health] = await orch.worker_health()
    assert health.state is WorkerState.SUSPECT
    assert not sent.say(TaskStatus.COMPLETED, output_json="1")  # its late word is heard by nobody


async def test_a_dispatch_nobody_answers_cannot_hold_the_task_past_its_deadline(
    orchestrator: Callable[[int], Awaitable[Started]],
) -> None:
    orch, edge, clock = await orchestrator(1)
    handle = await orch.execute_task("job", {}, timeout_seconds=5)
    async with asyncio.timeout(5):
        sent = await edge.next_sent()  # and never answered
    clock.advance(5 + DEADLINE_SLACK_SECONDS)
    with pytest.raises(TaskTimeoutError):
        await handle.result(timeout_seconds=5)
    sent.accept()  # too late: the task ended
    assert handle.status is TaskStatus.FAILED


async def test_a_cancel_the_worker_never_confirms_is_asked_again_then_ends_the_task(
    orchestrator: Callable[[int], Awaitable[Started]],
) -> None:
    orch, edge, clock = await orchestrator(1)
    handle = await orch.execute_task("job", {})
    async with asyncio.timeout(5):
        sent = await edge.next_sent()
        sent.accept()
        sent.say(TaskStatus.RUNNING)
        canceling = asyncio.ensure_future(handle.cancel("not needed"))
        first = await edge.next_cancel()
        first.answer.set_result(CancelAnswer.UNREACHABLE)
        assert await canceling is True
        clock.advance(CANCEL_RESEND_SECONDS)
        again = await edge.next_cancel()
    assert (again.task_id, again.reason) == (handle.task_id, "not needed")
    again.answer.set_result(CancelAnswer.CANCELING)  # said yes, and then never a word
    clock.advance(CANCEL_CONFIRM_SECONDS)
    with pytest.raises(TaskCanceledError):
        await handle.result(timeout_seconds=5)
    assert "did not confirm" in handle.updates[-1].error_message
    assert not sent.say(TaskStatus.COMPLETED, output_json="1")
