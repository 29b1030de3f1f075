"""The dashboard's human-in-the-loop routes over HTTP, against the real uvicorn server the daemon runs: a task's
question and its answer (valid, refused with its problems, too late), approve and deny, the inbox, who is
recorded as having answered or decided when credentials are checked, and the streamed output as server-sent
events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Gates
from tests.dashboard.conftest import CLIENT, GATED, OPERATOR, POST, DashboardDaemon, StreamingAsker, sse
from tests.hitl.workers import FreeingWorker
from worker_abstraction import RegistryServer, TaskStatus
from worker_abstraction.auth import Authenticator
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def web(asking: DashboardDaemon) -> AsyncIterator[httpx.AsyncClient]:
    assert asking.dashboard is not None
    async with httpx.AsyncClient(base_url=asking.dashboard.url, timeout=10) as client:
        yield client


async def until_status(handle: AsyncTaskHandle, status: TaskStatus) -> None:
    async with asyncio.timeout(10):
        async for update in handle:
            if update.status is status:
                return
    raise AssertionError(f"task {handle.task_id} ended {handle.status.name} and was never {status.name}")


async def test_a_question_is_shown_answered_through_the_page_and_recorded_with_its_answer(
    asking: DashboardDaemon, web: httpx.AsyncClient
) -> None:
    handle = await asking.orchestrator.execute_task("review", {"item": "v2"})
    request = await handle.input_requested(timeout_seconds=10)
    shown = (await web.get(f"/api/tasks/{handle.task_id}")).json()
    assert shown["status"] == "INPUT_REQUIRED" and shown["may"]["answer"] is True and shown["may"]["cancel"] is True
    pending = shown["input_request"]
    assert (pending["prompt"], pending["request_id"], pending["deadline"]) == ("Ship v2?", request.request_id, None)
    assert '"approved"' in pending["schema"] and '"boolean"' in pending["schema"]
    assert [(e["prompt"], e["answer"]) for e in shown["inputs"]] == [("Ship v2?", None)]
    assert "asked: Ship v2?" in [u["note"] for u in shown["updates"]]
    listed = (await web.get("/api/tasks", params={"status": "input_required"})).json()["tasks"]
    assert [row["task_id"] for row in listed] == [handle.task_id]

    url = f"/api/tasks/{handle.task_id}/answer"
    assert (await web.post(url, json={"value_json": "true"})).status_code == 403  # no dashboard header
    refused = await web.post(url, json={"value_json": '{"approved": "yes", "note": 7}'}, headers=POST)
    assert refused.status_code == 422
    problems = refused.json()["problems"]
    assert len(problems) == 2 and any("boolean" in p for p in problems) and any("note" in p for p in problems)
    not_json = await web.post(url, json={"value_json": "{approved"}, headers=POST)
    assert not_json.status_code == 422 and "not JSON" in not_json.json()["problems"][0]
    for body in ({}, {"value": 1, "value_json": "1"}, {"value_json": 1}, {"value": 1, "colour": "red"}, []):
        assert (await web.post(url, json=body, headers=POST)).status_code == 400, body
    wrong = await web.post(url, json={"value": {"approved": True}, "request_id": "another"}, headers=POST)
    assert wrong.status_code == 409
    assert handle.status is TaskStatus.INPUT_REQUIRED  # refused answers leave it waiting

    given = '{\n  "approved": true,\n  "note": "go"\n}'
    answered = await web.post(url, json={"value_json": given, "request_id": request.request_id}, headers=POST)
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"task_id": handle.task_id, "request_id": request.request_id, "answered_by": ""}
    assert await handle.result(timeout_seconds=10) == {"item": "v2", "answer": {"approved": True, "note": "go"}}
    done = (await web.get(f"/api/tasks/{handle.task_id}")).json()
    assert done["input_request"] is None and done["may"]["answer"] is False
    [exchange] = done["inputs"]
    assert exchange["answer"]["value"] == '{"approved":true,"note":"go"}'  # kept compact
    assert exchange["answer"]["answered_by"] == "" and exchange["answer"]["answered_at"] is not None
    assert (await web.post(url, json={"value": True}, headers=POST)).status_code == 409  # it waits no more
    assert (await web.post("/api/tasks/nobody/answer", json={"value": True}, headers=POST)).status_code == 404


async def test_approve_and_deny_a_gated_task_and_the_inbox_lists_what_waits(
    asking: DashboardDaemon, web: httpx.AsyncClient
) -> None:
    gated = await asking.orchestrator.execute_task(GATED, {})
    await until_status(gated, TaskStatus.APPROVAL_REQUIRED)
    asked = await asking.orchestrator.execute_task("review", {"item": "later"})
    await asked.input_requested(timeout_seconds=10)
    inbox = (await web.get("/api/inbox")).json()
    assert [(t["task_id"], t["waiting_for"], t["prompt"]) for t in inbox["tasks"]] == [
        (asked.task_id, "input", "Ship later?"),
        (gated.task_id, "approval", ""),
    ]
    assert [t["status"] for t in inbox["tasks"]] == ["INPUT_REQUIRED", "APPROVAL_REQUIRED"]
    shown = (await web.get(f"/api/tasks/{gated.task_id}")).json()
    assert shown["status"] == "APPROVAL_REQUIRED" and shown["approval_required"] is True
    assert shown["may"]["approve"] is True and shown["may"]["deny"] is True and shown["approval"] is None

    assert (await web.post(f"/api/tasks/{gated.task_id}/approve", json={})).status_code == 403  # no header
    approved = await web.post(f"/api/tasks/{gated.task_id}/approve", json={"reason": "looks fine"}, headers=POST)
    assert approved.status_code == 200 and approved.json()["status"] in ("PENDING", "RUNNING")
    assert await gated.result(timeout_seconds=10) == "ok"
    decision = (await web.get(f"/api/tasks/{gated.task_id}")).json()["approval"]
    assert (decision["approved"], decision["decided_by"], decision["reason"]) == (True, "", "looks fine")
    again = await web.post(f"/api/tasks/{gated.task_id}/approve", json={}, headers=POST)
    assert again.status_code == 409

    denied_one = await asking.orchestrator.execute_task(GATED, {})
    await until_status(denied_one, TaskStatus.APPROVAL_REQUIRED)
    url = f"/api/tasks/{denied_one.task_id}/deny"
    for body in ({}, {"reason": "  "}, {"reason": 3}, {"reason": "x" * 5000}, {"why": "no"}):
        assert (await web.post(url, json=body, headers=POST)).status_code == 400, body
    denied = await web.post(url, json={"reason": "not on a Friday"}, headers=POST)
    assert denied.status_code == 200 and denied.json()["status"] == "CANCELED"
    record = await asking.orchestrator.task(denied_one.task_id)
    assert record.status is TaskStatus.CANCELED and record.approval is not None
    assert (record.approval.approved, record.approval.reason) == (False, "not on a Friday")
    shown = (await web.get(f"/api/tasks/{denied_one.task_id}")).json()
    assert shown["approval"]["approved"] is False and shown["may"]["approve"] is False
    assert (await web.post(url, json={"reason": "twice"}, headers=POST)).status_code == 409
    assert (await web.post("/api/tasks/nobody/approve", json={}, headers=POST)).status_code == 404

    assert [t["task_id"] for t in (await web.get("/api/inbox")).json()["tasks"]] == [asked.task_id]
    await asking.orchestrator.provide_input(asked.task_id, {"approved": False})
    await asked.result(timeout_seconds=10)
    assert (await web.get("/api/inbox")).json()["tasks"] == []


async def test_with_credentials_checked_only_operators_answer_or_decide_and_are_recorded_by_name(
    registry: RegistryServer, start_worker: Callable[..., Any], authenticator: Authenticator
) -> None:
    await start_worker(StreamingAsker)
    async with DashboardDaemon(registry.address, auth=authenticator, approval_required=[GATED]) as daemon:
        assert daemon.dashboard is not None
        await daemon.orchestrator.wait_for_workers("review", timeout_seconds=5)
        asked = await daemon.orchestrator.execute_task("review", {"item": "v3"})
        gated = await daemon.orchestrator.execute_task(GATED, {})
        denied = await daemon.orchestrator.execute_task(GATED, {})
        await asked.input_requested(timeout_seconds=10)
        await until_status(denied, TaskStatus.APPROVAL_REQUIRED)
        operator = {**POST, "Authorization": f"Bearer {OPERATOR}"}
        client = {**POST, "Authorization": f"Bearer {CLIENT}"}
        async with httpx.AsyncClient(base_url=daemon.dashboard.url, timeout=10) as web:
            calls = [
                (f"/api/tasks/{asked.task_id}/answer", {"value": {"approved": True}}),
                (f"/api/tasks/{gated.task_id}/approve", {"reason": "ok"}),
                (f"/api/tasks/{denied.task_id}/deny", {"reason": "no"}),
            ]
            for path, body in calls:
                assert (await web.post(path, json=body, headers=POST)).status_code == 401, path
                assert (await web.post(path, json=body, headers=client)).status_code == 403, path
            assert (await web.get("/api/inbox", headers={"Authorization": f"Bearer {CLIENT}"})).status_code == 403
            assert len((await web.get("/api/inbox", headers=operator)).json()["tasks"]) == 3
            for path, body in calls:
                done = await web.post(path, json=body, headers=operator)
                assert done.status_code == 200, (path, done.text)
        await asked.result(timeout_seconds=10)
        await gated.result(timeout_seconds=10)
        assert (await denied.wait(timeout_seconds=10)).status is TaskStatus.CANCELED
        [exchange] = (await daemon.orchestrator.task(asked.task_id)).inputs
        assert exchange.answer is not None and exchange.answer.answered_by == "operator/root"
        for handle, approved in ((gated, True), (denied, False)):
            decision = (await daemon.orchestrator.task(handle.task_id)).approval
            assert decision is not None and (decision.approved, decision.decided_by) == (approved, "operator/root")


async def chunks_of(web: httpx.AsyncClient, task_id: str, **options: Any) -> AsyncIterator[tuple[str, Any]]:
    async with web.stream("GET", f"/api/tasks/{task_id}/chunks", **options) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        async for event in sse(response):
            yield event


async def test_streamed_output_arrives_as_events_as_it_comes_and_resumes_after_a_given_chunk(
    asking: DashboardDaemon, web: httpx.AsyncClient, gates: Gates
) -> None:
    params = {"gate": "drip", "first": ["alpha ", "beta "], "then": ["gamma ", "delta"]}
    handle = await asking.orchestrator.execute_task("drip", params)
    async with asyncio.timeout(10):
        events = chunks_of(web, handle.task_id)
        seen: list[str] = []
        while len(seen) < 2:  # the first part, while the task still runs
            kind, data = await anext(events)
            assert kind == "chunks" and data["dropped"] is None
            seen += [chunk["text"] for chunk in data["chunks"]]
        assert seen == ["alpha ", "beta "] and handle.status is TaskStatus.RUNNING
        gates.open("drip")
        async for kind, data in events:
            if kind == "end":
                assert data == {"status": "COMPLETED", "chunks": 4}
                break
            seen += [chunk["text"] for chunk in data["chunks"]]
        assert "".join(seen) == "alpha beta gamma delta"

        resumed = [e async for e in chunks_of(web, handle.task_id, params={"after": "2"})]
        assert [c["index"] for _, d in resumed[:-1] for c in d["chunks"]] == [3, 4]
        reconnected = [e async for e in chunks_of(web, handle.task_id, headers={"Last-Event-ID": "3"})]
        assert [c["text"] for _, d in reconnected[:-1] for c in d["chunks"]] == ["delta"]
    assert (await web.get(f"/api/tasks/{handle.task_id}/chunks", params={"after": "x"})).status_code == 400
    assert (await web.get("/api/tasks/nobody/chunks")).status_code == 404


async def test_many_chunks_come_in_batches_and_stay_out_of_the_updates_shown(
    asking: DashboardDaemon, web: httpx.AsyncClient
) -> None:
    handle = await asking.orchestrator.execute_task("rows", {"count": 600})
    assert await handle.result(timeout_seconds=10) == "done"
    async with asyncio.timeout(10):
        events = [e async for e in chunks_of(web, handle.task_id)]
    batches = [data["chunks"] for kind, data in events if kind == "chunks"]
    assert [len(b) for b in batches] == [256, 256, 88]
    indexes = [chunk["index"] for batch in batches for chunk in batch]
    assert indexes == list(range(1, 601))
    assert batches[0][0] == {"index": 1, "text": '{"row":0}', "json": True, "last": False}
    assert batches[-1][-1]["last"] is True and events[-1] == ("end", {"status": "COMPLETED", "chunks": 600})
    shown = (await web.get(f"/api/tasks/{handle.task_id}")).json()
    assert shown["chunks"] == 600 and shown["updates_total"] < 10
    assert all(u["status"] != "RUNNING" or u["output"] == "" for u in shown["updates"])


async def test_questions_that_free_the_worker_slot_are_answered_in_turn_through_the_page(
    asking: DashboardDaemon, web: httpx.AsyncClient, start_worker: Callable[..., Any]
) -> None:
    await start_worker(FreeingWorker, max_concurrent_tasks=1)
    await asking.orchestrator.wait_for_workers("interview", timeout_seconds=5)
    handle = await asking.orchestrator.execute_task("interview", {"who": "ada"})
    first = await handle.input_requested(timeout_seconds=10)
    url = f"/api/tasks/{handle.task_id}/answer"
    shown = (await web.get(f"/api/tasks/{handle.task_id}")).json()
    assert shown["input_request"]["prompt"] == "ada: your name?" and shown["may"]["answer"] is True
    assert (await web.post(url, json={"value_json": "7"}, headers=POST)).status_code == 422  # a string is asked
    assert (await web.post(url, json={"value_json": '"Ada"'}, headers=POST)).status_code == 200
    second = await handle.input_requested(timeout_seconds=10)
    while second.request_id == first.request_id:
        second = await handle.input_requested(timeout_seconds=10)
    assert (await web.get("/api/inbox")).json()["tasks"][0]["prompt"] == "Ada: your age?"
    assert (await web.post(url, json={"value": 36}, headers=POST)).status_code == 200
    assert await handle.result(timeout_seconds=10) == {"who": "ada", "name": "Ada", "age": 36}
    done = (await web.get(f"/api/tasks/{handle.task_id}")).json()
    assert [(e["prompt"], e["answer"]["value"]) for e in done["inputs"]] == [
        ("ada: your name?", '"Ada"'),
        ("Ada: your age?", "36"),
    ]
