"""The dashboard's workflow routes over HTTP, against the real uvicorn server a daemon runs, with a SQLite store
that keeps one finished task in memory (so ended runs and their steps are read from the store), and a worker
whose capabilities are workflow steps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import Gates
from tests.dashboard.conftest import CLIENT, OPERATOR, POST, DashboardDaemon, finished
from worker_abstraction import RegistryServer, TaskStatus
from worker_abstraction.auth import Authenticator
from worker_abstraction.orchestrator.core.workflow_handle import WorkflowHandle
from worker_abstraction.workflows import FAILED_STEP, FAILURE_ERROR, Workflow

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def web(flows: DashboardDaemon) -> AsyncIterator[httpx.AsyncClient]:
    assert flows.dashboard is not None
    async with httpx.AsyncClient(base_url=flows.dashboard.url, timeout=10) as client:
        yield client


def held(gate: str = "release") -> Workflow:
    """extract -> a map of 3 `double`s -> hold (waits for `gate`) -> sum (of the doubles, after hold)."""
    flow = Workflow("held")
    numbers = flow.step("extract", "numbers", {"count": 3})
    doubled = flow.map("double", "double", over=numbers["values"], item="value", concurrency=2)
    flow.step("hold", "gate", {"name": gate}, after=[doubled])
    flow.step("sum", "total", {"values": doubled}, after=["hold"])
    return flow


def broken() -> Workflow:
    """A step that fails, one that waits for it (skipped), one beside them, and an on_failure step."""
    flow = Workflow("broken", fail_fast=False)
    flow.step("start", "numbers", {"count": 2})
    bad = flow.step("bad", "fail", {"message": "broken on purpose"}, after=["start"])
    flow.step("later", "double", {"value": 1}, after=[bad])
    flow.step("beside", "double", {"value": 5}, after=["start"])
    flow.on_failure("alert", "note", {"step": FAILED_STEP, "error": FAILURE_ERROR})
    return flow


async def until_step(handle: WorkflowHandle, name: str, status: str) -> None:
    async with asyncio.timeout(10):
        async for step in handle:
            if (step.name, step.status) == (name, status):
                return


def by_name(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in found["steps"]}


async def test_a_running_workflow_shows_every_step_its_graph_and_the_outputs_so_far(
    flows: DashboardDaemon, web: httpx.AsyncClient, gates: Gates
) -> None:
    handle = await flows.orchestrator.run_workflow(held(), workflow_id="wf-held")
    await until_step(handle, "hold", "RUNNING")

    found = (await web.get("/api/workflows/wf-held")).json()
    assert (found["workflow_id"], found["name"], found["status"]) == ("wf-held", "held", "RUNNING")
    steps = by_name(found)
    assert {name: (s["status"], s["tasks"], s["layer"]) for name, s in steps.items()} == {
        "extract": ("COMPLETED", 1, 0),
        "double": ("COMPLETED", 3, 1),
        "hold": ("RUNNING", 1, 2),
        "sum": ("WAITING", 0, 3),
    }
    assert {(e["from"], e["to"]) for e in found["edges"]} == {
        ("extract", "double"),
        ("double", "hold"),
        ("double", "sum"),
        ("hold", "sum"),
    }
    assert steps["sum"]["parents"] == ["hold", "double"] and found["layers"] == 4
    assert steps["double"]["map"] == {"over": "extract", "item": "value", "concurrency": 2}
    assert steps["double"]["task_ids"] == ["wf-held.double.0", "wf-held.double.1", "wf-held.double.2"]
    assert steps["hold"]["task_ids"] == ["wf-held.hold"] and steps["sum"]["task_ids"] == []
    assert '"values":[1,2,3]' in steps["extract"]["output"]  # read from the step's task while the run goes
    assert steps["double"]["output"] == "[2,4,6]"
    assert steps["hold"]["output"] is None
    assert found["may"] == {"cancel": True, "rerun": False}
    assert (found["steps_total"], found["steps_shown"], found["failed_step"], found["rerun_of"]) == (4, 4, "", "")

    [row] = (await web.get("/api/workflows")).json()["workflows"]
    assert (row["workflow_id"], row["status"], row["steps_total"]) == ("wf-held", "RUNNING", 4)
    assert row["counts"] == {"COMPLETED": 2, "RUNNING": 1, "WAITING": 1}

    gates.open("release")
    await handle.result(timeout_seconds=10)
    await finished(flows, "double", value=0)  # pushes the run out of memory: what follows is read from the store
    ended = (await web.get("/api/workflows/wf-held")).json()
    assert ended["status"] == "COMPLETED" and ended["may"] == {"cancel": False, "rerun": True}
    assert {s["status"] for s in ended["steps"]} == {"COMPLETED"}
    assert by_name(ended)["sum"]["output"] == "12" and by_name(ended)["double"]["output"] == "[2,4,6]"
    assert len(ended["edges"]) == 4


async def test_a_failed_workflow_names_its_step_and_error_and_reruns_from_a_step(
    flows: DashboardDaemon, web: httpx.AsyncClient
) -> None:
    handle = await flows.orchestrator.run_workflow(broken(), workflow_id="wf-broken")
    await handle.wait(timeout_seconds=10)
    found = (await web.get("/api/workflows/wf-broken")).json()
    assert (found["status"], found["failed_step"]) == ("FAILED", "bad")
    assert "broken on purpose" in found["error"]
    steps = by_name(found)
    assert steps["bad"]["status"] == "FAILED" and "ValueError: broken on purpose" in steps["bad"]["error"]
    assert steps["later"]["status"] == "SKIPPED" and steps["beside"]["output"] == "10"
    assert (steps["alert"]["status"], steps["alert"]["on_failure"]) == ("COMPLETED", True)
    assert steps["alert"]["layer"] == found["layers"] - 1 and steps["alert"]["parents"] == []
    assert "broken on purpose" in steps["alert"]["output"] and '"step":"bad"' in steps["alert"]["output"]
    [row] = (await web.get("/api/workflows", params={"status": "failed"})).json()["workflows"]
    assert (row["workflow_id"], row["failed_step"]) == ("wf-broken", "bad") and "broken on purpose" in row["error"]

    refused = await web.post("/api/workflows/wf-broken/rerun", headers=POST, json={"step": "nope"})
    assert refused.status_code == 400
    for hostile in (b"{", b"[]", b'{"step": 1}', b'{"step": "bad", "downstream": "yes"}', b'{"x": 1}', b"[" * 9000):
        answer = await web.post("/api/workflows/wf-broken/rerun", headers=POST, content=hostile)
        assert answer.status_code == 400, hostile[:20]
    assert (await web.post("/api/workflows/wf-broken/rerun", json={"step": "bad"})).status_code == 403  # no header

    rerun = await web.post("/api/workflows/wf-broken/rerun", headers=POST, json={"step": "bad", "downstream": False})
    assert rerun.status_code == 200
    again = rerun.json()["workflow_id"]
    assert again != "wf-broken"
    await (await flows.orchestrator.watch_workflow(again)).wait(timeout_seconds=10)
    second = (await web.get(f"/api/workflows/{again}")).json()
    assert second["rerun_of"] == "wf-broken" and second["failed_step"] == "bad"
    assert by_name(second)["start"]["kept"] is True and by_name(second)["beside"]["kept"] is True


async def test_cancel_ends_a_running_workflow_and_refuses_an_ended_or_unknown_one_or_a_plain_task(
    flows: DashboardDaemon, web: httpx.AsyncClient, gates: Gates
) -> None:
    handle = await flows.orchestrator.run_workflow(held("never"), workflow_id="wf-cancel")
    await until_step(handle, "hold", "RUNNING")
    assert (await web.post("/api/workflows/wf-cancel/rerun", headers=POST, json={"step": "hold"})).status_code == 409
    assert (await web.post("/api/workflows/wf-cancel/cancel")).status_code == 403  # no dashboard header
    canceled = await web.post("/api/workflows/wf-cancel/cancel", headers=POST)
    assert canceled.status_code == 200
    assert (await handle.wait(timeout_seconds=10)).status is TaskStatus.CANCELED
    assert "canceled from the dashboard" in (await flows.orchestrator.task("wf-cancel")).cancel_reason
    found = (await web.get("/api/workflows/wf-cancel")).json()
    assert found["status"] == "CANCELED" and by_name(found)["hold"]["status"] == "CANCELED"
    assert (await web.post("/api/workflows/wf-cancel/cancel", headers=POST)).status_code == 409

    task_id = await finished(flows, "double", value=2)
    for path in ("no-such-workflow", task_id, "x" * 5000):
        assert (await web.get(f"/api/workflows/{path}")).status_code == 404, path[:20]
        assert (await web.post(f"/api/workflows/{path}/cancel", headers=POST)).status_code == 404, path[:20]
        assert (await web.post(f"/api/workflows/{path}/rerun", headers=POST, json={"step": "a"})).status_code == 404
    assert (await web.get(f"/tasks/{task_id}")).status_code == 200  # (it is a task: it has a task's page)


async def test_the_list_filters_by_status_and_id_and_refuses_what_it_does_not_know(
    flows: DashboardDaemon, web: httpx.AsyncClient, gates: Gates
) -> None:
    for n in range(3):
        await flows.orchestrator.run_workflow(broken(), workflow_id=f"wf-list-{n}")
    running = await flows.orchestrator.run_workflow(held("list"), workflow_id="wf-running")
    for n in range(3):
        await (await flows.orchestrator.watch_workflow(f"wf-list-{n}")).wait(timeout_seconds=10)
    await finished(flows, "double", value=1)  # a plain task is not listed

    async def listed(**params: Any) -> list[str]:
        answer = await web.get("/api/workflows", params=params)
        assert answer.status_code == 200, answer.text
        return [row["workflow_id"] for row in answer.json()["workflows"]]

    assert await listed() == ["wf-running", "wf-list-2", "wf-list-1", "wf-list-0"]
    assert await listed(status="failed") == ["wf-list-2", "wf-list-1", "wf-list-0"]
    assert await listed(status="running,completed") == ["wf-running"]
    assert await listed(q="wf-list-1") == ["wf-list-1"]
    page = (await web.get("/api/workflows", params={"limit": 2, "offset": 1})).json()
    assert [row["workflow_id"] for row in page["workflows"]] == ["wf-list-2", "wf-list-1"] and page["more"] is True
    for params in ({"capability": "echo"}, {"worker": "w"}, {"status": "done"}, {"limit": "0"}, {"colour": "<b>"}):
        refused = await web.get("/api/workflows", params=params)
        assert refused.status_code == 400 and next(iter(params)) in refused.json()["error"], params
    gates.open("list")
    await running.wait(timeout_seconds=10)


async def test_a_large_workflow_shows_a_bounded_graph_and_hostile_names_come_back_as_text(
    flows: DashboardDaemon, web: httpx.AsyncClient, gates: Gates
) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    flow = Workflow(hostile * 5)
    flow.step("first", "gate", {"name": "big"})
    for n in range(399):
        flow.step(f"s{n}", "double", {"value": n}, after=["first"])
    handle = await flows.orchestrator.run_workflow(flow, workflow_id=hostile)
    await until_step(handle, "first", "RUNNING")
    answer = await web.get(f"/api/workflows/{hostile}")
    found = answer.json()
    assert (found["workflow_id"], found["name"]) == (hostile, hostile * 5)
    assert (found["steps_total"], found["steps_shown"], len(found["steps"])) == (400, 300, 300)
    assert len(found["edges"]) == 299 and found["layers"] == 2
    assert len(answer.content) < 200_000
    assert (await web.get(f"/workflows/{hostile}")).status_code == 200
    gates.open("big")
    await handle.wait(timeout_seconds=20)


async def test_with_auth_only_operators_may_read_or_cancel_workflows(
    registry: RegistryServer, flows: DashboardDaemon, authenticator: Authenticator, gates: Gates
) -> None:
    async with DashboardDaemon(registry.address, auth=authenticator) as secured:
        assert secured.dashboard is not None
        await secured.orchestrator.wait_for_workers("gate", timeout_seconds=5)
        handle = await secured.orchestrator.run_workflow(held("auth"), workflow_id="wf-auth")
        await until_step(handle, "hold", "RUNNING")
        async with httpx.AsyncClient(base_url=secured.dashboard.url, timeout=10) as web:
            client = {"Authorization": f"Bearer {CLIENT}"}
            operator = {"Authorization": f"Bearer {OPERATOR}"}
            assert (await web.get("/api/workflows")).status_code == 401
            assert (await web.get("/api/workflows/wf-auth", headers=client)).status_code == 403
            assert (await web.post("/api/workflows/wf-auth/cancel", headers={**POST, **client})).status_code == 403
            assert (await web.get("/workflows/wf-auth")).status_code == 401  # the sign-in form
            assert handle.status is TaskStatus.RUNNING
            found = await web.get("/api/workflows/wf-auth", headers=operator)
            assert found.status_code == 200 and found.json()["may"]["cancel"] is True
            assert (await web.post("/api/workflows/wf-auth/cancel", headers={**POST, **operator})).status_code == 200
            assert (await handle.wait(timeout_seconds=10)).status is TaskStatus.CANCELED
