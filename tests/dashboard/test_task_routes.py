"""The dashboard's task and worker addresses, its filtered task list, and the cancel and retry routes, over HTTP
against the real uvicorn server the daemon runs (with a SQLite store keeping one finished task in memory, so
that lists and pages must come from the store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import Gates
from tests.dashboard.conftest import CLIENT, OPERATOR, POST, DashboardDaemon, dead_letter, finished, sse
from worker_abstraction import RegistryServer, TaskStatus
from worker_abstraction.auth import Authenticator
from worker_abstraction.orchestrator.core.gates import ConcurrencyLimit
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def web(stored: OrchestratorServer) -> AsyncIterator[httpx.AsyncClient]:
    assert stored.dashboard is not None
    async with httpx.AsyncClient(base_url=stored.dashboard.url, timeout=10) as client:
        yield client


async def listed(web: httpx.AsyncClient, **params: Any) -> list[str]:
    answer = await web.get("/api/tasks", params=params)
    assert answer.status_code == 200, answer.text
    return [row["task_id"] for row in answer.json()["tasks"]]


async def test_each_task_and_worker_has_an_address_that_serves_the_page(
    stored: OrchestratorServer, web: httpx.AsyncClient
) -> None:
    task_id = await finished(stored, "echo", text="x")
    [worker] = await stored.orchestrator.workers()
    for path in (f"/tasks/{task_id}", f"/workers/{worker.worker_id}", "/tasks/any/id/with/slashes"):
        page = await web.get(path)
        assert page.status_code == 200 and "/static/app.js" in page.text, path


async def test_the_filtered_list_reads_the_whole_store_by_status_capability_worker_time_and_id(
    stored: OrchestratorServer, web: httpx.AsyncClient
) -> None:
    echoed = [await finished(stored, "echo", text=str(n)) for n in range(3)]
    middle = (await stored.orchestrator.task(echoed[-1])).submitted_at
    assert middle is not None
    failed = await finished(stored, "explode", message="kaput")
    [worker] = await stored.orchestrator.workers()

    assert [t["task_id"] for t in (await web.get("/api/tasks")).json()["tasks"]] == [failed, *reversed(echoed)]
    assert await listed(web, status="failed") == [failed]
    assert await listed(web, status="FAILED,completed", capability="explode") == [failed]
    assert await listed(web, status=["failed", "completed"]) == [failed, *reversed(echoed)]
    assert await listed(web, worker=worker.worker_id, capability="echo") == list(reversed(echoed))
    assert await listed(web, worker="someone-else") == []
    assert await listed(web, since=str(middle.timestamp())) == [failed, echoed[-1]]
    assert await listed(web, until=middle.isoformat()) == [echoed[1], echoed[0]]
    assert await listed(web, q=failed[:20]) == [failed]
    assert await listed(web, q=failed) == [failed]

    first = (await web.get("/api/tasks", params={"capability": "echo", "limit": 2})).json()
    second = (await web.get("/api/tasks", params={"capability": "echo", "limit": 2, "offset": 2})).json()
    assert [r["task_id"] for r in first["tasks"]] == [echoed[2], echoed[1]] and first["more"] is True
    assert [r["task_id"] for r in second["tasks"]] == [echoed[0]] and second["more"] is False
    [row] = (await web.get("/api/tasks", params={"q": failed})).json()["tasks"]
    assert (row["status"], row["worker_id"], row["worker_name"]) == ("FAILED", worker.worker_id, "ToolWorker")
    assert row["error"] == "ValueError: kaput" and row["attempt"] == 1 and row["latency"] is not None


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"status": "done"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"until": "1e300"}, "until"),
        ({"since": "１２"}, "since"),  # other scripts' digits, as float() would take them
        ({"since": "1_0"}, "since"),
        ({"since": "2000", "until": "1000"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "10001"}, "offset"),
        ({"q": "x" * 300}, "q"),
        ({"worker": "w" * 300}, "worker"),
        ({"colour": "red"}, "colour"),
        ({"capability": ["a", "b"]}, "capability"),
    ],
)
async def test_a_filter_out_of_range_is_refused_naming_it(
    web: httpx.AsyncClient, params: dict[str, Any], named: str
) -> None:
    refused = await web.get("/api/tasks", params=params)
    assert refused.status_code == 400
    assert named in refused.json()["error"]


async def test_a_refusal_names_every_problem_and_quotes_only_a_short_prefix(web: httpx.AsyncClient) -> None:
    hostile = "<script>" + "y" * 5000
    refused = await web.get("/api/tasks", params={"status": hostile, "since": hostile, "limit": "many"})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert "status" in error and "since" in error and "limit" in error
    assert len(error) < 600 and "y" * 100 not in error


async def test_cancel_ends_a_running_task_and_refuses_a_finished_or_unknown_one(
    stored: OrchestratorServer, web: httpx.AsyncClient, gates: Gates
) -> None:
    handle = await stored.orchestrator.execute_task("wait_for", {"name": "never"})
    async with asyncio.timeout(10):
        async for update in handle:
            if update.status is TaskStatus.RUNNING:
                break
    assert (await web.post(f"/api/tasks/{handle.task_id}/cancel")).status_code == 403  # no dashboard header
    canceled = await web.post(f"/api/tasks/{handle.task_id}/cancel", headers=POST)
    assert canceled.status_code == 200
    assert (await handle.wait(timeout_seconds=10)).status is TaskStatus.CANCELED
    assert "canceled from the dashboard" in (await stored.orchestrator.task(handle.task_id)).cancel_reason
    assert (await web.post(f"/api/tasks/{handle.task_id}/cancel", headers=POST)).status_code == 409
    assert (await web.post("/api/tasks/no-such-task/cancel", headers=POST)).status_code == 404
    assert (await web.post("/api/tasks/" + "x" * 5000 + "/cancel", headers=POST)).status_code == 404


async def test_retry_submits_a_failed_task_again_with_its_options_from_the_store(
    stored: OrchestratorServer, web: httpx.AsyncClient
) -> None:
    options = {"priority": 3, "timeout_seconds": 7.5, "metadata": {"team": "ops"}, "idempotency_key": "order-9"}
    handle = await stored.orchestrator.execute_task("explode", {"message": "again"}, **options)
    await handle.wait(timeout_seconds=10)
    await finished(stored, "echo", text="pushes the failed one out of memory")

    detail = (await web.get(f"/api/tasks/{handle.task_id}")).json()
    assert detail["may"] == {"cancel": False, "retry": True, "answer": False, "approve": False, "deny": False}
    assert "raise ValueError(message)" in detail["last_update"]["failure"]["traceback"]
    retried = await web.post(f"/api/tasks/{handle.task_id}/retry", headers=POST)
    assert retried.status_code == 200
    new_id = retried.json()["task_id"]
    assert new_id != handle.task_id
    again = await stored.orchestrator.watch(new_id)
    assert (await again.wait(timeout_seconds=10)).status is TaskStatus.FAILED
    record = await stored.orchestrator.task(new_id)
    assert (record.capability, record.params, record.idempotency_key) == ("explode", {"message": "again"}, "")
    submitted = await stored.orchestrator.engine.submission(new_id)
    assert submitted is not None
    assert (submitted.options.priority, submitted.options.timeout_seconds) == (3, 7.5)
    assert dict(submitted.options.metadata) == {"team": "ops"}

    completed = await finished(stored, "echo", text="fine")
    assert (await web.post(f"/api/tasks/{completed}/retry", headers=POST)).status_code == 409
    assert (await web.post("/api/tasks/no-such-task/retry", headers=POST)).status_code == 404
    assert (await web.post(f"/api/tasks/{handle.task_id}/retry")).status_code == 403


async def test_retrying_a_dead_letter_requeues_it(stored: OrchestratorServer, web: httpx.AsyncClient) -> None:
    letter = await dead_letter(stored, "twice")
    retried = await web.post(f"/api/tasks/{letter}/retry", headers=POST)
    assert retried.status_code == 200
    assert letter not in [d.task_id for d in await stored.orchestrator.dead_letters()]
    record = await stored.orchestrator.task(retried.json()["task_id"])
    assert record.capability == "explode" and record.params == {"message": "twice"}


async def test_a_worker_has_a_page_with_its_state_and_latest_tasks(
    stored: OrchestratorServer, web: httpx.AsyncClient
) -> None:
    done = [await finished(stored, "echo", text=str(n)) for n in range(2)]
    [worker] = await stored.orchestrator.workers()
    found = (await web.get(f"/api/workers/{worker.worker_id}")).json()
    assert (found["live"], found["name"]) == (True, "ToolWorker")
    assert found["worker"]["state"] == "ACTIVE" and found["worker"]["circuit"] == "closed"
    assert "echo" in found["worker"]["capabilities"] and found["worker"]["slots"] == worker.max_concurrent_tasks
    assert [t["task_id"] for t in found["tasks"]] == list(reversed(done))
    assert (await web.get("/api/workers/nobody")).status_code == 404
    assert (await web.get("/api/workers/" + "w" * 5000)).status_code == 404


async def test_rows_and_their_live_events_name_the_worker_beside_its_id(
    daemon: OrchestratorServer, http: httpx.AsyncClient, gates: Gates
) -> None:
    [worker] = await daemon.orchestrator.workers()
    async with asyncio.timeout(10), http.stream("GET", "/api/events") as response:
        events = sse(response)
        assert (await anext(events))[0] == "snapshot"
        handle = await daemon.orchestrator.execute_task("echo", {"text": "who"})
        async for kind, data in events:
            if kind == "task" and data["task_id"] == handle.task_id and data["status"] == "COMPLETED":
                assert (data["worker_id"], data["worker_name"]) == (worker.worker_id, "ToolWorker")
                break
    [row] = (await http.get("/api/tasks")).json()["tasks"]
    assert (row["worker_id"], row["worker_name"]) == (worker.worker_id, "ToolWorker")
    detail = (await http.get(f"/api/tasks/{handle.task_id}")).json()
    assert detail["worker_name"] == "ToolWorker" and detail["attempts"][0]["worker_name"] == "ToolWorker"


async def test_me_says_whether_credentials_are_checked_and_who_signed_in(
    registry: RegistryServer, http: httpx.AsyncClient, authenticator: Authenticator
) -> None:
    assert (await http.get("/api/me")).json() == {"auth": False, "name": "", "operator": True}
    async with DashboardDaemon(registry.address, auth=authenticator) as daemon:
        assert daemon.dashboard is not None
        async with httpx.AsyncClient(base_url=daemon.dashboard.url, timeout=10) as web:
            assert (await web.get("/api/me")).status_code == 401
            assert (await web.get("/api/me", headers={"Authorization": f"Bearer {CLIENT}"})).status_code == 403
            me = await web.get("/api/me", headers={"Authorization": f"Bearer {OPERATOR}"})
            assert me.json() == {"auth": True, "name": "operator/root", "operator": True}
            refused = await web.post("/api/tasks/x/retry", headers={**POST, "Authorization": f"Bearer {CLIENT}"})
            assert refused.status_code == 403


async def test_signing_in_from_a_task_address_goes_back_to_it_and_nowhere_else(
    registry: RegistryServer, authenticator: Authenticator
) -> None:
    async with DashboardDaemon(registry.address, auth=authenticator) as daemon:
        assert daemon.dashboard is not None
        async with httpx.AsyncClient(base_url=daemon.dashboard.url, timeout=10) as web:
            form = await web.get("/tasks/abc")
            assert form.status_code == 401 and 'name="next" value="/tasks/abc"' in form.text
            hostile = await web.get('/tasks/"><script>x</script>')
            assert hostile.status_code == 401 and "<script>x" not in hostile.text
            back = await web.post("/login", data={"token": OPERATOR, "next": "/tasks/abc"})
            assert back.status_code == 303 and back.headers["location"] == "/tasks/abc"
            for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "tasks/abc"):
                sent = await web.post("/login", data={"token": OPERATOR, "next": elsewhere})
                assert sent.headers["location"] == "/", elsewhere
            linked = await web.get("/workers/w1", params={"token": OPERATOR})
            assert linked.status_code == 303 and linked.headers["location"] == "/workers/w1"


async def test_a_delayed_task_shows_when_it_may_start(stored: OrchestratorServer, web: httpx.AsyncClient) -> None:
    handle = await stored.orchestrator.execute_task("echo", {"text": "later"}, delay_seconds=600)
    answer = await web.get(f"/api/tasks/{handle.task_id}")
    assert answer.status_code == 200
    shown = answer.json()
    assert shown["status"] == "PENDING" and 590 < shown["not_before"] - shown["submitted_at"] < 601
    assert await handle.cancel("not needed")


async def test_the_overview_tells_which_tasks_a_limit_holds_back(
    stored: OrchestratorServer, web: httpx.AsyncClient, gates: Gates
) -> None:
    await stored.orchestrator.set_limits(ConcurrencyLimit("wait_for", 1))
    held = [await stored.orchestrator.execute_task("wait_for", {"name": "overview-limit"}) for _ in range(3)]
    overview = (await web.get("/api/overview")).json()
    assert overview["limited"] == [
        {"capability": "wait_for", "waiting": 2, "starts_in_seconds": None, "limit": "1 in flight (queue)"}
    ]
    gates.open("overview-limit")
    for handle in held:
        await handle.result(timeout_seconds=10)
