"""The dashboard over HTTP, against the real uvicorn server the daemon runs in its own loop."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gates, eventually
from tests.dashboard.conftest import CLIENT, OPERATOR, POST, DashboardDaemon, dead_letter, sse
from worker_abstraction import RegistryServer, TLSConfig, certs
from worker_abstraction.auth import Authenticator
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.main import build_parser
from worker_abstraction.dashboard import DashboardServer
from worker_abstraction.dashboard.feed import LiveFeed
from worker_abstraction.errors import BindError
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator

pytestmark = pytest.mark.timeout(30)


async def test_the_page_and_its_script_are_served(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/static/app.js" in page.text
    script = await http.get("/static/app.js")
    assert script.status_code == 200 and "EventSource" in script.text


async def test_the_event_stream_pushes_a_submitted_tasks_row_as_it_runs_and_completes(
    daemon: OrchestratorServer, http: httpx.AsyncClient, gates: Gates
) -> None:
    seen: list[str] = []
    async with asyncio.timeout(10), http.stream("GET", "/api/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse(response)
        kind, first = await anext(events)
        assert kind == "snapshot" and first["tasks"] == []
        [worker] = first["overview"]["workers"]
        assert "echo" in worker["capabilities"]
        assert "echo@1.0.0" in worker["capability_versions"]  # (no version declared: 1.0.0)
        handle = await daemon.orchestrator.execute_task("wait_for", {"name": "go"})
        async for kind, data in events:
            if kind != "task" or data["task_id"] != handle.task_id:
                continue
            seen.append(data["status"])
            if data["status"] == "RUNNING":
                gates.open("go")
            if data["status"] == "COMPLETED":
                assert data["worker_id"] and data["latency"] is not None
                break
    assert seen[0] == "PENDING" and "RUNNING" in seen and seen[-1] == "COMPLETED"


async def test_the_overview_is_pushed_with_throughput_after_tasks_finish(
    daemon: OrchestratorServer, http: httpx.AsyncClient
) -> None:
    for text in ("a", "b", "c"):
        await (await daemon.orchestrator.execute_task("echo", {"text": text})).result(timeout_seconds=5)
    async with asyncio.timeout(10), http.stream("GET", "/api/events") as response:
        async for kind, data in sse(response):
            if kind == "overview" and sum(data["series"]["completed"]) == 3:
                assert data["workers"][0]["state"] == "ACTIVE" and data["workers"][0]["circuit"] == "closed"
                assert any(p is not None for p in data["series"]["p95"])
                break
    tasks = (await http.get("/api/tasks")).json()["tasks"]
    assert [t["status"] for t in tasks] == ["COMPLETED"] * 3


async def test_task_detail_lists_every_attempt_and_update(daemon: OrchestratorServer, http: httpx.AsyncClient) -> None:
    task_id = await dead_letter(daemon, "twice")
    found = (await http.get(f"/api/tasks/{task_id}")).json()
    assert (found["status"], found["dead_lettered"]) == ("FAILED", True)
    assert [a["status"] for a in found["attempts"]] == ["FAILED", "FAILED"]
    assert found["updates"][-1]["status"] == "FAILED" and "twice" in found["updates"][-1]["error"]
    assert found["updates_total"] == len(found["updates"]) >= 3


async def test_an_unknown_task_is_not_found(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/tasks/no-such-task")).status_code == 404
    assert (await http.get("/api/tasks/" + "x" * 5000)).status_code == 404
    assert (await http.post("/api/dead-letters/no-such-task/requeue", headers=POST)).status_code == 404


async def test_requeue_submits_a_dead_letter_again_and_purge_drops_them(
    daemon: OrchestratorServer, http: httpx.AsyncClient
) -> None:
    first, second, third = [await dead_letter(daemon, m) for m in ("one", "two", "three")]
    requeued = await http.post(f"/api/dead-letters/{first}/requeue", headers=POST)
    assert requeued.status_code == 200
    new_id = requeued.json()["task_id"]
    assert new_id != first
    assert (await daemon.orchestrator.task(new_id)).capability == "explode"
    letters = [d["task_id"] for d in (await http.get("/api/dead-letters")).json()["dead_letters"]]
    assert first not in letters and {second, third} <= set(letters)
    purged = await http.post("/api/dead-letters/purge", headers=POST, json={"task_ids": [second]})
    assert purged.json() == {"purged": 1}
    assert (await http.post("/api/dead-letters/purge", headers=POST, json={"task_ids": "x"})).status_code == 400
    for hostile in (b"{", b"[1, 2]", b'{"ids": []}', b"[" * 100_000, b"x" * 100_000):
        assert (await http.post("/api/dead-letters/purge", headers=POST, content=hostile)).status_code == 400
    assert third in [d.task_id for d in await daemon.orchestrator.dead_letters()]  # none of them purged anything
    await (await daemon.orchestrator.watch(new_id)).wait(timeout_seconds=10)  # it fails again, into the queue
    everything = await http.post("/api/dead-letters/purge", headers=POST)
    assert everything.json() == {"purged": 2}
    assert await daemon.orchestrator.dead_letters() == []


async def test_a_post_without_the_dashboards_header_is_refused(
    daemon: OrchestratorServer, http: httpx.AsyncClient
) -> None:
    task_id = await dead_letter(daemon)
    assert (await http.post(f"/api/dead-letters/{task_id}/requeue")).status_code == 403
    assert (await http.post("/api/dead-letters/purge")).status_code == 403
    assert [d.task_id for d in await daemon.orchestrator.dead_letters()] == [task_id]


async def test_with_auth_only_operators_get_in_by_header_or_signed_in_cookie(
    registry: RegistryServer, start_worker: Callable[..., Any], authenticator: Authenticator
) -> None:
    await start_worker()
    async with DashboardDaemon(registry.address, auth=authenticator) as daemon:
        assert daemon.dashboard is not None
        async with httpx.AsyncClient(base_url=daemon.dashboard.url, timeout=10) as http:
            assert (await http.get("/api/overview")).status_code == 401
            assert (await http.get("/api/events")).status_code == 401
            page = await http.get("/")
            assert page.status_code == 401 and 'name="token"' in page.text  # the login form
            assert (await http.get("/api/tasks", headers={"Authorization": "Bearer wrong"})).status_code == 401
            assert (await http.get("/api/tasks", headers={"Authorization": f"Bearer {CLIENT}"})).status_code == 403
            assert (await http.get("/api/tasks", headers={"Authorization": f"Bearer {OPERATOR}"})).status_code == 200
            refused = await http.post("/login", data={"token": CLIENT})
            assert refused.status_code == 403 and "wa_dashboard" not in refused.cookies

            signed_in = await http.get("/", params={"token": OPERATOR})
            assert signed_in.status_code == 303
            cookie = signed_in.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            assert (await http.get("/")).status_code == 200
            assert (await http.get("/api/overview")).status_code == 200
            task_id = await dead_letter(daemon)
            assert (await http.post("/api/dead-letters/purge")).status_code == 403  # a cookie alone: no
            assert (await http.post("/api/dead-letters/purge", headers=POST)).json() == {"purged": 1}
            assert task_id not in [d.task_id for d in await daemon.orchestrator.dead_letters()]
            await http.post("/logout")
            assert (await http.get("/api/overview")).status_code == 401


async def test_the_dashboard_serves_https_with_the_daemons_certificate(
    registry: RegistryServer, tmp_path: Path
) -> None:
    certs.init_dir(tmp_path)
    tls = TLSConfig(cert=(tmp_path / "server.pem").read_bytes(), key=tmp_path / "server.key")
    async with AsyncOrchestrator(registry.address) as orchestrator:
        dashboard = DashboardServer(orchestrator, tls=tls)
        await dashboard.start()
        try:
            assert dashboard.url.startswith("https://")
            trust = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            async with httpx.AsyncClient(base_url=dashboard.url, verify=trust, timeout=10) as http:
                assert (await http.get("/api/tasks")).json() == {"tasks": []}
            async with httpx.AsyncClient(base_url=dashboard.url.replace("https", "http"), timeout=10) as plain:
                with pytest.raises(httpx.HTTPError):
                    await plain.get("/api/tasks")
        finally:
            await dashboard.stop()


async def test_pages_past_the_bound_are_refused_until_one_leaves_and_stop_ends_open_streams(
    registry: RegistryServer,
) -> None:
    async with AsyncOrchestrator(registry.address) as orchestrator:
        feed = LiveFeed(max_clients=1)
        dashboard = DashboardServer(orchestrator, feed=feed)
        await dashboard.start()
        try:
            async with httpx.AsyncClient(base_url=dashboard.url, timeout=10) as http:
                async with http.stream("GET", "/api/events") as leaving:
                    assert (await anext(sse(leaving)))[0] == "snapshot" and feed.clients == 1
                await eventually(lambda: feed.clients == 0, what="the server noticed the page left")
            async with (
                httpx.AsyncClient(base_url=dashboard.url, timeout=10) as http,
                http.stream("GET", "/api/events") as first,
            ):
                events = sse(first)
                assert (await anext(events))[0] == "snapshot"
                assert (await http.get("/api/events")).status_code == 503
                async with asyncio.timeout(5):
                    await dashboard.stop()
                    assert [kind async for kind, _ in events if kind != "overview"] == []  # the stream ended
        finally:
            await dashboard.stop()


async def test_a_dashboard_port_in_use_fails_the_start(registry: RegistryServer) -> None:
    async with AsyncOrchestrator(registry.address) as orchestrator:
        taken = DashboardServer(orchestrator)
        await taken.start()
        try:
            with pytest.raises(BindError):
                await DashboardServer(orchestrator, port=taken.port).start()
        finally:
            await taken.stop()


async def test_the_overview_counts_tasks_waiting_per_capability_and_priority(registry: RegistryServer) -> None:
    async with DashboardDaemon(registry.address, queue_without_workers=True) as daemon:
        assert daemon.dashboard is not None
        for priority in (0, 5, 5):
            await daemon.orchestrator.execute_task("nobody_offers_this", {}, priority=priority)
        async with httpx.AsyncClient(base_url=daemon.dashboard.url, timeout=10) as http:
            found = (await http.get("/api/overview")).json()
            assert found["queue"] == [
                {"capability": "nobody_offers_this", "priority": 5, "waiting": 2},
                {"capability": "nobody_offers_this", "priority": 0, "waiting": 1},
            ]
            assert [t["status"] for t in (await http.get("/api/tasks")).json()["tasks"]] == ["PENDING"] * 3


def test_the_dashboard_port_comes_from_the_flag_the_environment_or_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "wa.toml"
    config.write_text("http_port = 8081\n")
    assert build_parser(Settings.load({}, cwd=tmp_path / "none")).parse_args(["orchestrator"]).http_port is None
    from_file = build_parser(Settings.load({}, str(config))).parse_args(["orchestrator"])
    from_env = build_parser(Settings.load({"WA_HTTP_PORT": "8082"}, str(config))).parse_args(["orchestrator"])
    from_flag = build_parser(Settings.load({"WA_HTTP_PORT": "8082"})).parse_args(["orchestrator", "--http-port", "0"])
    assert (from_file.http_port, from_env.http_port, from_flag.http_port) == (8081, 8082, 0)
