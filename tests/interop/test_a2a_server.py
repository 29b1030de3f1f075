"""The team served as an A2A agent beside the dashboard, driven by the A2A SDK's own client: the card lists the
capabilities as skills, a message runs a task and returns its result, a stream carries status and artifact
chunks in order, cancel, get and list, a question answered by a follow-up message, and credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, A2AClientError
from a2a.types import (
    CancelTaskRequest,
    GetExtendedAgentCardRequest,
    GetTaskRequest,
    InvalidParamsError,
    InvalidRequestError,
    ListTasksRequest,
    SubscribeToTaskRequest,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskState,
)
from a2a.utils.constants import TransportProtocol

from tests.conftest import Gates, eventually
from tests.dashboard.conftest import DashboardDaemon
from tests.interop.a2a_support import TeamWorker, a2a_client, answer, call, collect, said
from worker_abstraction import RegistryServer, TaskStatus
from worker_abstraction.auth import Authenticator, TokenFile
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


async def test_a_stream_carries_status_then_the_chunks_in_order_then_the_result(
    team: DashboardDaemon, gates: Gates
) -> None:
    async with a2a_client(url_of(team)) as client:
        stream = client.send_message(call("spell", {"word": "abc", "gate": "spell"}))
        first = await anext(stream)
        assert first.HasField("task") and first.task.status.state == TaskState.TASK_STATE_SUBMITTED
        waiting = await anext(stream)  # the handler's progress before it spells: the gate is still shut
        while waiting.status_update.status.message.parts == []:
            waiting = await anext(stream)
        assert text_of(waiting.status_update.status.message.parts) == "waiting to spell"
        gates.open("spell")
        rest = await collect(stream)
    kinds = [e.WhichOneof("payload") for e in rest]
    assert kinds == ["artifact_update"] * 3 + ["status_update", "artifact_update", "status_update"]
    chunks = [e.artifact_update for e in rest[:3]]
    assert [(c.artifact.name, text_of(c.artifact.parts)) for c in chunks] == [("stream", x) for x in "abc"]
    assert [(c.append, c.last_chunk) for c in chunks] == [(False, False), (True, False), (True, True)]
    progress = rest[3].status_update.status
    assert progress.state == TaskState.TASK_STATE_WORKING and text_of(progress.message.parts) == "spelled"
    assert json_of(progress.message.metadata) == {"progress": 1}
    result = rest[4].artifact_update
    assert result.artifact.name == "result" and data_of(result.artifact.parts) == [{"word": "abc", "letters": 3}]
    assert rest[5].status_update.status.state == TaskState.TASK_STATE_COMPLETED


async def test_cancel_ends_a_running_task_and_get_and_list_show_it(team: DashboardDaemon) -> None:
    async with a2a_client(url_of(team), streaming=False) as client:
        request = call("hold", {})
        request.configuration.return_immediately = True
        started = (await collect(client.send_message(request)))[0].task
        handle = await team.orchestrator.watch(started.id)
        await eventually(lambda: handle.status is TaskStatus.RUNNING, what="the task runs")
        canceled = await client.cancel_task(CancelTaskRequest(id=started.id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        assert (await team.orchestrator.task(started.id)).status is TaskStatus.CANCELED

        got = await client.get_task(GetTaskRequest(id=started.id))
        assert (got.id, got.status.state) == (started.id, TaskState.TASK_STATE_CANCELED)
        assert json_of(got.metadata)["capability"] == "hold"
        assert [data_of(m.parts) for m in got.history] == [[{"capability": "hold", "params": {}}]]
        with pytest.raises(TaskNotCancelableError):  # an ended task cannot be canceled again
            await client.cancel_task(CancelTaskRequest(id=started.id))
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id="no-such-task"))

        done = (await collect(client.send_message(call("shout", {"text": "x"}, message_id="m-2"))))[0].task
        listed = await client.list_tasks(ListTasksRequest())
        assert [t.id for t in listed.tasks] == [done.id, started.id]  # newest first
        only = await client.list_tasks(ListTasksRequest(status=TaskState.TASK_STATE_CANCELED))
        assert [t.id for t in only.tasks] == [started.id]
        first = await client.list_tasks(ListTasksRequest(page_size=1))
        second = await client.list_tasks(ListTasksRequest(page_size=1, page_token=first.next_page_token))
        assert [t.id for t in [*first.tasks, *second.tasks]] == [done.id, started.id] and not second.next_page_token


async def test_a_question_is_input_required_and_a_follow_up_message_answers_it(team: DashboardDaemon) -> None:
    async with a2a_client(url_of(team)) as client:
        asked = await collect(client.send_message(call("ship", {"item": "crates"}, context_id="talk-1")))
        question = asked[-1].status_update
        assert question.status.state == TaskState.TASK_STATE_INPUT_REQUIRED  # the stream ends at the question
        assert text_of(question.status.message.parts) == "How many crates?"
        assert json_of(question.status.message.metadata)["schema"] == {"type": "integer", "minimum": 1}
        task_id = question.task_id
        assert question.context_id == "talk-1"

        rest = await collect(client.send_message(answer(task_id, 3, context_id="talk-1")))
        assert rest[0].task.id == task_id
        assert rest[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
        assert data_of(rest[-2].artifact_update.artifact.parts) == [{"item": "crates", "count": 3}]
        got = await client.get_task(GetTaskRequest(id=task_id))
    assert got.context_id == "talk-1"
    assert [m.role for m in got.history] == [1, 2, 1]  # the call, the question, the answer
    assert (await team.orchestrator.task(task_id)).inputs[0].answer is not None


async def test_subscribing_to_a_running_task_gives_it_then_its_updates(team: DashboardDaemon, gates: Gates) -> None:
    async with a2a_client(url_of(team)) as client:
        request = call("spell", {"word": "ok", "gate": "sub"})
        request.configuration.return_immediately = True
        async with a2a_client(url_of(team), streaming=False) as sender:
            task_id = (await collect(sender.send_message(request)))[0].task.id
        stream = client.subscribe(SubscribeToTaskRequest(id=task_id))
        first = await anext(stream)
        assert first.task.id == task_id
        gates.open("sub")
        rest = await collect(stream)
    letters = [text_of(e.artifact_update.artifact.parts) for e in rest if e.artifact_update.artifact.name == "stream"]
    assert letters == ["o", "k"] and rest[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED


async def test_the_http_json_binding_serves_the_same_tasks(team: DashboardDaemon) -> None:
    async with a2a_client(url_of(team), streaming=False, bindings=[TransportProtocol.HTTP_JSON]) as client:
        task = (await collect(client.send_message(call("shout", {"text": "rest"}))))[0].task
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        assert (await client.get_task(GetTaskRequest(id=task.id))).artifacts[0].parts[0].text == "REST"


async def test_a_message_that_names_no_capability_or_breaks_its_parameters_is_refused(team: DashboardDaemon) -> None:
    async with a2a_client(url_of(team), streaming=False) as client:
        with pytest.raises(InvalidParamsError):
            await collect(client.send_message(said("hello")))
        with pytest.raises(InvalidParamsError):
            await collect(client.send_message(call("shout", {"text": 3})))
        with pytest.raises(InvalidParamsError):
            await collect(client.send_message(call("no_such_capability", {})))


async def test_text_is_the_argument_of_a_capability_named_in_metadata_that_takes_one_text(
    team: DashboardDaemon,
) -> None:
    async with a2a_client(url_of(team), streaming=False) as client:
        task = (await collect(client.send_message(said("quiet", capability="shout"))))[0].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED and task.artifacts[0].parts[0].text == "QUIET"


async def test_each_worker_has_a_card_and_an_address_whose_tasks_run_on_it(team: DashboardDaemon) -> None:
    worker = (await team.orchestrator.workers())[0]
    url = f"{url_of(team)}a2a/workers/{worker.worker_id}"
    async with a2a_client(url, streaming=False) as client:
        task = (await collect(client.send_message(call("shout", {"text": "one"}))))[0].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert (await team.orchestrator.task(task.id)).attempts[0].worker_id == worker.worker_id
    async with httpx.AsyncClient(timeout=10) as http:
        card = await A2ACardResolver(http, url).get_agent_card()
        assert {skill.id for skill in card.skills} == {"shout", "spell", "hold", "ship"}
        assert card.supported_interfaces[0].url == url
        missing = await http.get(f"{url_of(team)}a2a/workers/nobody/.well-known/agent-card.json")
        assert missing.status_code == 404


OPERATOR, ALICE, BOB, WORKER = (
    "operator-token-0123456",
    "alice-token-0123456789",
    "bob-token-01234567890",
    "w-token-0123456789",
)
TOKENS = f"""
[[principal]]
name = "operator/root"
roles = ["operator"]
token = "{OPERATOR}"

[[principal]]
name = "client/alice"
roles = ["client"]
token = "{ALICE}"

[[principal]]
name = "client/bob"
roles = ["client"]
token = "{BOB}"
capabilities = ["shout"]

[[principal]]
name = "worker/w"
roles = ["worker"]
token = "{WORKER}"
"""


@pytest.fixture
async def guarded(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[DashboardDaemon]:
    await start_worker(TeamWorker)
    path = tmp_path / "tokens.toml"
    path.write_text(TOKENS)
    auth = Authenticator(TokenFile(path, check_every_seconds=0))
    async with DashboardDaemon(registry.address, auth=auth) as server:
        await server.orchestrator.wait_for_workers("shout", timeout_seconds=5)
        yield server


async def test_with_credentials_on_a_call_without_a_token_is_refused_and_the_card_declares_the_scheme(
    guarded: DashboardDaemon,
) -> None:
    base = url_of(guarded)
    async with httpx.AsyncClient(timeout=10) as http:
        public = await A2ACardResolver(http, base).get_agent_card()
        body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}
        version = {"A2A-Version": "1.0"}
        assert (await http.post(base + "a2a", json=body, headers=version)).status_code == 401
        assert (await http.get(base + "a2a/rest/tasks", headers=version)).status_code == 401
        wrong = {**version, "Authorization": "Bearer not-a-token"}
        assert (await http.post(base + "a2a", json=body, headers=wrong)).status_code == 401
        worker = {**version, "Authorization": f"Bearer {WORKER}"}
        assert (await http.post(base + "a2a", json=body, headers=worker)).status_code == 403
    assert public.skills == [] and public.capabilities.extended_agent_card
    scheme = public.security_schemes["bearer"].http_auth_security_scheme
    assert scheme.scheme.lower() == "bearer" and "bearer" in public.security_requirements[0].schemes
    with pytest.raises(A2AClientError):
        async with a2a_client(base, streaming=False) as client:
            await collect(client.send_message(call("shout", {"text": "x"})))


async def test_with_credentials_on_a_client_sees_only_its_own_tasks_and_calls_only_what_it_may(
    guarded: DashboardDaemon,
) -> None:
    base = url_of(guarded)
    async with a2a_client(base, token=ALICE, streaming=False) as alice, a2a_client(base, token=BOB) as bob:
        full = await alice.get_extended_agent_card(GetExtendedAgentCardRequest())
        assert {skill.id for skill in full.skills} == {"shout", "spell", "hold", "ship"}
        mine = (await collect(alice.send_message(call("shout", {"text": "hi"}))))[0].task
        assert mine.status.state == TaskState.TASK_STATE_COMPLETED
        assert (await guarded.orchestrator.task(mine.id)).owner == "client/alice"
        with pytest.raises(TaskNotFoundError):  # another's task reads as unknown
            await bob.get_task(GetTaskRequest(id=mine.id))
        with pytest.raises(TaskNotFoundError):
            await bob.cancel_task(CancelTaskRequest(id=mine.id))
        assert list((await bob.list_tasks(ListTasksRequest())).tasks) == []
        with pytest.raises(InvalidRequestError):  # bob may call shout only
            await collect(bob.send_message(call("spell", {"word": "no", "gate": "never"})))
    async with a2a_client(base, token=OPERATOR, streaming=False) as operator:
        assert [t.id for t in (await operator.list_tasks(ListTasksRequest())).tasks] == [mine.id]
