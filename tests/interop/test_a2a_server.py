"""The team served as an A2A agent beside the dashboard, driven by the A2A SDK's own client: the card lists the
capabilities as skills, a message runs a task and returns its result, a stream carries status and artifact
chunks in order, cancel, get and list, a question answered by a follow-up message, and credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.constants import TransportProtocol

from tests.conftest import Gates, eventually
from tests.dashboard.conftest import DashboardDaemon
from tests.interop.a2a_support import TeamWorker, a2a_client, answer, call, collect
from worker_abstraction import RegistryServer, TaskStatus
from worker_abstraction.interop.a2a_card import input_schemas
from worker_abstraction.interop.a2a_messages import data_of, json_of, text_of

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def team(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[DashboardDaemon]:
    await start_worker(TeamWorker)
    async with DashboardDaemon(registry.address) as server:
        await server.orchestrator.wait_for_workers("spell", timeout_seconds=5)
        yield server


def url_of(daemon: DashboardDaemon) -> str:
    assert daemon.dashboard is not None
    return daemon.dashboard.url


async def test_the_card_lists_each_capability_as_a_skill_with_its_input_schema(team: DashboardDaemon) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        card = await A2ACardResolver(http, url_of(team)).get_agent_card()
    assert {skill.id for skill in card.skills} == {"shout", "spell", "hold", "ship"}
    shout = next(skill for skill in card.skills if skill.id == "shout")
    assert shout.description.startswith("Say it louder")
    assert [(i.protocol_binding, i.url) for i in card.supported_interfaces] == [
        (TransportProtocol.JSONRPC, url_of(team) + "a2a"),
        (TransportProtocol.HTTP_JSON, url_of(team) + "a2a/rest"),
    ]
    assert card.capabilities.streaming and not card.capabilities.push_notifications
    assert not card.security_schemes  # credentials are off
    assert input_schemas(card)["shout"] == {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "what to say."}},
        "required": ["text"],
        "additionalProperties": False,
    }


async def test_a_message_runs_its_capability_and_the_task_carries_the_result(team: DashboardDaemon) -> None:
    async with a2a_client(url_of(team), streaming=False) as client:
        events = await collect(client.send_message(call("shout", {"text": "hello"})))
    assert len(events) == 1 and events[0].HasField("task")
    task = events[0].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert [a.name for a in task.artifacts] == ["result"]
    assert text_of(task.artifacts[0].parts) == "HELLO"
    record = await team.orchestrator.task(task.id)  # the A2A task is ours, under the same id
    assert (record.capability, record.params, record.output) == ("shout", {"text": "hello"}, "HELLO")
