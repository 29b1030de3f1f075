"""A2AWorker wrapping an agent built with the A2A SDK alone (`a2a_agent`): its skills become capabilities, a task
submitted through our orchestrator runs on the agent, its artifact chunks stream as our chunks, its question is
ours to answer, and canceling our task cancels the agent's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import Gates, eventually
from tests.dashboard.conftest import DashboardDaemon
from tests.e2e.processes import Start, start  # noqa: F401  (the fixture that starts `wa` processes)
from tests.interop.a2a_agent import SkillAgent, serving
from tests.interop.a2a_support import TeamWorker
from worker_abstraction import RegistryServer
from worker_abstraction.errors import TaskCanceledError, TaskFailedError
from worker_abstraction.interop.a2a_worker import A2AWorker
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def agent() -> AsyncIterator[tuple[str, SkillAgent]]:
    async with serving() as served:
        yield served


@pytest.fixture
async def orchestrator(registry: RegistryServer, agent: tuple[str, SkillAgent]) -> AsyncIterator[AsyncOrchestrator]:
    worker = A2AWorker(registry.address, url=agent[0], heartbeat_interval_seconds=0.1)
    await worker.start()
    try:
        async with AsyncOrchestrator(registry.address) as found:
            await found.wait_for_workers("confirm", timeout_seconds=5)
            yield found
    finally:
        await worker.stop(grace_seconds=0.5)


async def test_the_agents_skills_are_capabilities_and_a_task_runs_on_the_agent(orchestrator: AsyncOrchestrator) -> None:
    (worker,) = await orchestrator.workers()
    assert [c.name for c in worker.capabilities] == ["reverse", "letters", "stall", "confirm"]
    assert [(p.name, p.required) for p in worker.capabilities[0].parameters] == [("text", False), ("data", False)]
    assert worker.capability("reverse").description == "Reverse the text"  # type: ignore[union-attr]
    handle = await orchestrator.execute_task("reverse", {"text": "stressed"})
    assert await handle.result(timeout_seconds=10) == "desserts"
    assert "reversing" in [u.progress_message for u in handle.updates]


async def test_the_agents_artifact_chunks_stream_as_our_chunks_in_order(
    orchestrator: AsyncOrchestrator, gates: Gates
) -> None:
    handle = await orchestrator.execute_task("letters", {"text": "abc"})
    await eventually(lambda: "spelling" in [u.progress_message for u in handle.updates], what="the agent works")
    gates.open("letters")
    chunks = [chunk async for chunk in handle.stream()]
    assert [c.data for c in chunks] == ["a", "b", "c"]
    assert await handle.result(timeout_seconds=10) == ["a", "b", "c"]


async def test_canceling_our_task_cancels_the_agents(
    orchestrator: AsyncOrchestrator, agent: tuple[str, SkillAgent]
) -> None:
    handle = await orchestrator.execute_task("stall", {"text": "x"})
    await eventually(agent[1].stalled.is_set, what="the agent's task runs")
    await handle.cancel("enough")
    with pytest.raises(TaskCanceledError):
        await handle.result(timeout_seconds=10)
    await eventually(lambda: len(agent[1].cancels) == 1, what="the agent was asked to cancel")


async def test_the_agents_question_is_ours_and_the_answer_goes_back(orchestrator: AsyncOrchestrator) -> None:
    handle = await orchestrator.execute_task("confirm", {"text": "deploy"})
    request = await handle.input_requested(timeout_seconds=10)
    assert request.prompt == "Really deploy?"
    await handle.provide_input("yes")
    assert await handle.result(timeout_seconds=10) == "confirmed: yes"


async def test_an_agents_failure_fails_our_task_with_its_message(orchestrator: AsyncOrchestrator) -> None:
    handle = await orchestrator.execute_task("reverse", {})
    with pytest.raises(TaskFailedError) as failed:
        await handle.result(timeout_seconds=10)
    assert failed.value.error_type == "RemoteAgentError" and "nothing to reverse" in failed.value.error_message


async def test_wa_worker_a2a_serves_the_agents_skills_from_the_command_line(
    registry: RegistryServer,
    agent: tuple[str, SkillAgent],
    start: Start,  # noqa: F811
) -> None:
    process = await start("worker", "--a2a", agent[0], "--registry", registry.address, "--heartbeat-interval", "0.2")
    async with AsyncOrchestrator(registry.address) as orchestrator:
        (worker,) = await orchestrator.wait_for_workers("reverse", timeout_seconds=10)
        assert worker.worker_id == process.worker_id
        handle = await orchestrator.execute_task("reverse", {"text": "drawer"})
        assert await handle.result(timeout_seconds=10) == "reward"
    assert await process.stop() == 0


async def test_a_team_of_ours_wrapped_keeps_its_schemas_and_streams(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker(TeamWorker)
    other = RegistryServer(port=0, ttl_seconds=1.0, sweep_interval_seconds=0.1)  # (the wrapper's own team)
    await other.start()
    try:
        async with DashboardDaemon(registry.address) as team:
            await team.orchestrator.wait_for_workers("spell", timeout_seconds=5)
            assert team.dashboard is not None
            wrapper = A2AWorker(other.address, url=team.dashboard.url, heartbeat_interval_seconds=0.1)
            await wrapper.start()
            try:
                async with AsyncOrchestrator(other.address) as orchestrator:
                    (worker,) = await orchestrator.wait_for_workers("spell", timeout_seconds=5)
                    spell = worker.capability("spell")
                    # (the card carries the schema as a protobuf Struct, whose keys keep no order)
                    assert spell is not None and sorted(p.name for p in spell.parameters) == ["gate", "word"]
                    handle = await orchestrator.execute_task("spell", {"word": "hi", "gate": "wrapped"})
                    gates.open("wrapped")
                    assert [c.data async for c in handle.stream()] == ["h", "i"]
                    assert await handle.result(timeout_seconds=10) == {"word": "hi", "letters": 2}
            finally:
                await wrapper.stop(grace_seconds=0.5)
    finally:
        await other.stop(None)
