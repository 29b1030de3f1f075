"""Input required, approvals and streamed output on the embedded engine, with real workers."""

from __future__ import annotations

import asyncio

import pytest

from tests.hitl.workers import AskingWorker
from worker_abstraction import (
    AsyncOrchestrator,
    InvalidAnswerError,
    RegistryServer,
    TaskCanceledError,
    TaskFailedError,
    TaskNotWaitingError,
    TaskStatus,
)

pytestmark = pytest.mark.timeout(30)


async def _orchestrator(registry: RegistryServer, **options: object) -> AsyncOrchestrator:
    orchestrator = AsyncOrchestrator(registry.address, **options)  # type: ignore[arg-type]
    await orchestrator.start()
    await orchestrator.wait_for_workers("review", timeout_seconds=5)
    return orchestrator


async def test_a_handler_asks_and_goes_on_with_the_answer(registry: RegistryServer, start_worker) -> None:
    await start_worker(AskingWorker)
    async with await _orchestrator(registry) as orchestrator:
        handle = await orchestrator.execute_task("review", {"item": "v2"})
        request = await handle.input_requested(timeout_seconds=5)
        assert handle.status is TaskStatus.INPUT_REQUIRED
        assert request.prompt == "Ship v2?"
        assert request.schema is not None and request.schema["required"] == ["approved"]
        with pytest.raises(InvalidAnswerError) as refused:
            await handle.provide_input({"approved": "yes"})
        assert "answer['approved']" in str(refused.value) and "boolean" in str(refused.value)
        assert handle.status is TaskStatus.INPUT_REQUIRED  # still waiting
        await handle.provide_input({"approved": True, "note": "go"})
        assert await handle.result() == {"item": "v2", "answer": {"approved": True, "note": "go"}}
        record = await orchestrator.task(handle.task_id)
        assert [(e.request.prompt, e.answer.value if e.answer else None) for e in record.inputs] == [
            ("Ship v2?", {"approved": True, "note": "go"})
        ]
        with pytest.raises(TaskNotWaitingError):
            await handle.provide_input({"approved": True})


async def test_two_questions_in_turn_and_the_request_id_is_checked(registry: RegistryServer, start_worker) -> None:
    await start_worker(AskingWorker)
    async with await _orchestrator(registry) as orchestrator:
        handle = await orchestrator.execute_task("twice", {})
        first = await handle.input_requested(timeout_seconds=5)
        await orchestrator.provide_input(handle.task_id, "a", request_id=first.request_id)
        second = await handle.input_requested(timeout_seconds=5, after=first.request_id)
        assert second.prompt == "second?"
        with pytest.raises(TaskNotWaitingError):
            await orchestrator.provide_input(handle.task_id, 1, request_id=first.request_id)
        await handle.provide_input(2)
        assert await handle.result() == ["a", 2]


async def test_the_wait_has_its_own_timeout_and_not_the_run_timeout(registry: RegistryServer, start_worker) -> None:
    await start_worker(AskingWorker)
    async with await _orchestrator(registry) as orchestrator:
        # A run timeout of 1 s, and a wait longer than it: the wait does not count against it.
        handle = await orchestrator.execute_task("review", {"item": "x"}, timeout_seconds=1)
        await handle.input_requested(timeout_seconds=5)
        await asyncio.sleep(1.5)  # (the run's timeout passing while it waits is what is tested)
        assert handle.status is TaskStatus.INPUT_REQUIRED
        await handle.provide_input({"approved": False})
        assert (await handle.result())["answer"] == {"approved": False}
        # The question's own timeout ends the task.
        late = await orchestrator.execute_task("review", {"item": "y", "wait": 0.3})
        with pytest.raises(TaskFailedError) as failed:
            await late.result(timeout_seconds=10)
        assert failed.value.error_type == "InputTimeout"


async def test_approval_gates_a_task_and_deny_ends_it(registry: RegistryServer, start_worker) -> None:
    await start_worker(AskingWorker)
    async with await _orchestrator(registry, approval_required=["noop"]) as orchestrator:
        handle = await orchestrator.execute_task("noop", {})
        assert handle.status is TaskStatus.APPROVAL_REQUIRED and not handle.attempts
        assert await orchestrator.approve(handle.task_id, "looks fine") is TaskStatus.PENDING
        assert await handle.result() == "ok"
        record = await orchestrator.task(handle.task_id)
        assert record.approval_required and record.approval is not None and record.approval.approved
        denied = await orchestrator.execute_task("noop", {})
        await orchestrator.deny(denied.task_id, "not today")
        with pytest.raises(TaskCanceledError, match="not today"):
            await denied.result()
        record = await orchestrator.task(denied.task_id)
        assert record.approval is not None and not record.approval.approved and record.approval.reason == "not today"
        with pytest.raises(TaskNotWaitingError):
            await orchestrator.approve(denied.task_id)
        # One task asks for approval itself.
        own = await orchestrator.execute_task("tokens", {"count": 1}, require_approval=True)
        assert (await orchestrator.task(own.task_id)).status is TaskStatus.APPROVAL_REQUIRED
        await orchestrator.approve(own.task_id)
        assert await own.result() == 1


async def test_chunks_stream_in_order_and_resume(registry: RegistryServer, start_worker) -> None:
    await start_worker(AskingWorker)
    async with await _orchestrator(registry) as orchestrator:
        handle = await orchestrator.execute_task("tokens", {"count": 2000})
        seen = []
        async for chunk in handle.stream():
            seen.append(chunk)
            if chunk.index == 1000:
                break
        async for chunk in handle.stream(after=1000):
            seen.append(chunk)
        assert [c.index for c in seen] == list(range(1, 2001))
        assert [c.text for c in seen] == [f"{i:08d}" for i in range(2000)]
        assert await handle.result() == 2000
        rows = await orchestrator.execute_task("rows", {"count": 3})
        got = [chunk async for chunk in rows.stream()]
        assert [c.data for c in got] == [{"row": 0}, {"row": 1}, {"row": 2}] and got[-1].last


async def test_waits_and_chunks_are_counted_and_traced(registry: RegistryServer, start_worker, spans) -> None:
    from prometheus_client import CollectorRegistry

    from worker_abstraction.observability.metrics import OrchestratorMetrics

    await start_worker(AskingWorker)
    metrics = OrchestratorMetrics(CollectorRegistry())
    async with await _orchestrator(registry, metrics=metrics) as orchestrator:
        handle = await orchestrator.execute_task("review", {"item": "traced"})
        await handle.input_requested(timeout_seconds=5)
        await handle.provide_input({"approved": True})
        await handle.result()
        streamed = await orchestrator.execute_task("tokens", {"count": 5})
        assert await streamed.result() == 5
    sample = metrics.registry.get_sample_value
    assert sample("wa_input_requests_total", {"capability": "review"}) == 1
    assert sample("wa_input_wait_seconds_count", {"capability": "review"}) == 1
    assert sample("wa_output_chunks_total", {"capability": "tokens"}) == 5
    [wait] = [span for span in spans.get_finished_spans() if span.name == "input wait"]
    assert wait.attributes is not None and wait.attributes["wa.answered"] is True
    assert wait.attributes["wa.request_id"] == "input-1"


async def test_questions_answers_and_chunks_carry_the_progress_reported_before_them(
    registry: RegistryServer, start_worker
) -> None:
    await start_worker(AskingWorker)
    async with await _orchestrator(registry) as orchestrator:
        handle = await orchestrator.execute_task("review", {"item": "p"})
        await handle.input_requested(timeout_seconds=5)
        asked = handle.updates[-1]
        assert (asked.progress, asked.progress_message) == (0.1, "asking")  # what the handler reported before
        await handle.provide_input({"approved": True})
        await handle.result(timeout_seconds=5)
        answered = next(u for u in handle.updates if u.input_answer is not None)
        assert answered.progress == 0.1
