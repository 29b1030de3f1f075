"""The whole way round: an agent built with the A2A SDK alone (tests/interop/a2a_agent.py), joined as a worker by
A2AWorker, published again by our team beside its dashboard, and used by the SDK's own client: the card lists
its skills, a task runs on it, its chunks stream through in order, and a cancel reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from a2a.client import A2ACardResolver
from a2a.types import CancelTaskRequest, TaskState

from tests.conftest import Gates, eventually
from tests.dashboard.conftest import DashboardDaemon
from tests.interop.a2a_agent import SkillAgent, serving
from tests.interop.a2a_support import a2a_client, call, collect
from worker_abstraction import RegistryServer, TaskStatus
from worker_abstraction.interop.a2a_messages import text_of
from worker_abstraction.interop.a2a_worker import A2AWorker

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def wrapped(registry: RegistryServer) -> AsyncIterator[tuple[DashboardDaemon, SkillAgent]]:
    """Our team, whose one worker is the SDK-built agent behind A2AWorker; and that agent."""
    async with serving() as (url, agent):
        worker = A2AWorker(registry.address, url=url, heartbeat_interval_seconds=0.1)
        await worker.start()
        try:
            async with DashboardDaemon(registry.address) as team:
                await team.orchestrator.wait_for_workers("letters", timeout_seconds=5)
                yield team, agent
        finally:
            await worker.stop(grace_seconds=0.5)


async def test_an_sdk_client_uses_an_sdk_agent_through_a2a_worker_and_our_card(
    wrapped: tuple[DashboardDaemon, SkillAgent], gates: Gates
) -> None:
    team, agent = wrapped
    assert team.dashboard is not None
    url = team.dashboard.url

    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, url).get_agent_card()
    assert {"reverse", "letters", "stall", "confirm"} <= {skill.id for skill in card.skills}

    async with a2a_client(url, streaming=False) as client:
        [done] = await collect(client.send_message(call("reverse", {"text": "stressed"}, message_id="m-reverse")))
        assert done.task.status.state == TaskState.TASK_STATE_COMPLETED
        assert text_of(done.task.artifacts[-1].parts) == "desserts"

    async with a2a_client(url) as client:
        gates.open("letters")  # (the agent spells at once)
        stream = client.send_message(call("letters", {"text": "abc"}, message_id="m-letters"))
        events = await collect(stream)
    chunks = [text_of(e.artifact_update.artifact.parts) for e in events if e.HasField("artifact_update")]
    assert chunks[:3] == ["a", "b", "c"]
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED

    async with a2a_client(url, streaming=False) as client:
        request = call("stall", {}, message_id="m-stall")
        request.configuration.return_immediately = True
        [started] = await collect(client.send_message(request))
        handle = await team.orchestrator.watch(started.task.id)
        await eventually(lambda: handle.status is TaskStatus.RUNNING, what="the stalled task runs")
        await eventually(agent.stalled.is_set, what="the agent works on it")
        canceled = await client.cancel_task(CancelTaskRequest(id=started.task.id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        await eventually(lambda: len(agent.cancels) == 1, what="the cancel reaches the agent")
