"""A run's waits for input at its edges, on the in-memory worker edge with the manual clock: the deadline that
stops while the handler waits and goes on with what was left, the backstop past a question's deadline when the
worker goes silent, and a wait that freed the slot, answered and sent again with its answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest

from tests.orchestrator.fake_edge import FakeEdge, FakeRegistry, fake_worker
from tests.orchestrator.manual_clock import ManualClock
from worker_abstraction import AsyncOrchestrator, TaskFailedError, TaskStatus, TaskTimeoutError
from worker_abstraction.exchanges import SUSPENDED, InputAnswer, InputRequest
from worker_abstraction.orchestrator.core.asking import INPUT_SLACK_SECONDS
from worker_abstraction.orchestrator.core.run import DEADLINE_SLACK_SECONDS
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.orchestrator.edge.link import WorkerLinks
from worker_abstraction.registry.client import RegistryClient

pytestmark = pytest.mark.timeout(30)

Started = tuple[AsyncOrchestrator, FakeEdge, ManualClock]


@pytest.fixture
async def orchestrator() -> AsyncIterator[Callable[[], Awaitable[Started]]]:
    started: list[AsyncOrchestrator] = []

    async def start() -> Started:
        worker = fake_worker("w1")
        edge, clock = FakeEdge(worker), ManualClock()
        orchestrator = AsyncOrchestrator(
            "fake-registry:1",
            links=cast(WorkerLinks, edge),
            directory=WorkerDirectory(cast(RegistryClient, FakeRegistry(worker))),
            clock=clock,
        )
        started.append(orchestrator)
        await orchestrator.wait_for_workers("job", timeout_seconds=5)
        return orchestrator, edge, clock

    yield start
    for orchestrator in started:
        await orchestrator.aclose()


async def test_the_deadline_stops_while_the_handler_waits_and_goes_on_with_what_was_left(
    orchestrator: Callable[[], Awaitable[Started]],
) -> None:
    orch, edge, clock = await orchestrator()
    handle = await orch.execute_task("job", {}, timeout_seconds=10)
    async with asyncio.timeout(5):
        sent = await edge.next_sent()
    sent.accept()
    sent.say(TaskStatus.RUNNING)
    clock.advance(4)
    sent.say(TaskStatus.INPUT_REQUIRED, input_request=InputRequest("input-1", "go?"))
    clock.advance(3600)  # an hour of waiting counts for nothing
    assert handle.status is TaskStatus.INPUT_REQUIRED
    await orch.provide_input(handle.task_id, True, answered_by="ann")
    assert edge.inputs == [(handle.task_id, "input-1", "true", "ann", sent.number)]
    sent.say(TaskStatus.RUNNING, input_answer=InputAnswer("input-1", "true", "ann"))
    clock.advance(6 + DEADLINE_SLACK_SECONDS - 0.5)  # 4 s ran before the question: 6 s (and the slack) are left
    assert handle.status is TaskStatus.RUNNING
    clock.advance(1)
    with pytest.raises(TaskTimeoutError):
        await handle.result(timeout_seconds=5)


async def test_a_worker_silent_past_its_questions_deadline_fails_the_task(
    orchestrator: Callable[[], Awaitable[Started]],
) -> None:
    orch, edge, clock = await orchestrator()
    handle = await orch.execute_task("job", {}, timeout_seconds=0)
    async with asyncio.timeout(5):
        sent = await edge.next_sent()
    sent.accept()
    deadline_ns = int((clock.wall() + 30) * 1e9)
    sent.say(TaskStatus.INPUT_REQUIRED, input_request=InputRequest("input-1", "go?", "", deadline_ns))
    clock.advance(30 + INPUT_SLACK_SECONDS - 0.5)
    assert handle.status is TaskStatus.INPUT_REQUIRED
    clock.advance(1)
    with pytest.raises(TaskFailedError) as failed:
        await handle.result(timeout_seconds=5)
    assert failed.value.error_type == "InputTimeout"


async def test_a_wait_that_frees_the_slot_is_sent_again_with_its_answers(
    orchestrator: Callable[[], Awaitable[Started]],
) -> None:
    orch, edge, _ = await orchestrator()
    handle = await orch.execute_task("job", {})
    async with asyncio.timeout(5):
        first = await edge.next_sent()
    first.accept()
    question = InputRequest("input-1", "name?", '{"type": "string"}')
    first.say(TaskStatus.INPUT_REQUIRED, input_request=question, metadata={SUSPENDED: "1"})
    assert handle.status is TaskStatus.INPUT_REQUIRED and handle.worker_id == ""
    assert [(a.number, a.status) for a in handle.attempts] == [(first.number, TaskStatus.INPUT_REQUIRED)]
    await orch.provide_input(handle.task_id, "Ada", answered_by="ann")
    assert edge.inputs == []  # nobody holds it: the answer goes with the next dispatch
    async with asyncio.timeout(5):
        again = await edge.next_sent()
    assert again.number > first.number
    sent_answers = json.loads(edge.answers[(handle.task_id, again.number)])
    assert sent_answers["input-1"][:2] == ['"Ada"', "ann"]
    again.accept()
    again.say(TaskStatus.COMPLETED, output_json='"Ada"')
    assert await handle.result(timeout_seconds=5) == "Ada"
    [exchange] = (await orch.task(handle.task_id)).inputs
    assert exchange.answer is not None and (exchange.answer.value, exchange.answer.answered_by) == ("Ada", "ann")
