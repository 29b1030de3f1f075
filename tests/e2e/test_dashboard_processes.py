"""`wa orchestrator --http-port`: the daemon process serves its dashboard, and stops with it."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import httpx
from processes import FAST_REGISTRY, FAST_WORKER, Daemon, Start, wa

from tests.dashboard.conftest import sse
from worker_abstraction import RemoteOrchestrator

_URL = re.compile(r"serving the dashboard at (http://\S+)")


def dashboard_url(daemon: Daemon) -> str:
    """The URL the daemon logged (it serves before it prints its readiness line, so the line is there)."""
    found = _URL.search(daemon.stderr_path.read_text())
    assert found, f"no dashboard URL in stderr:\n{daemon.stderr_path.read_text()}"
    return found.group(1)


async def test_the_daemon_serves_live_tasks_and_stops_with_a_page_still_open(start: Start) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start("worker", "_workers:EchoWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER)
    daemon = await start(
        "orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:", "--http-port", "0"
    )
    url = dashboard_url(daemon)
    assert url.startswith("http://127.0.0.1:")
    async with (
        RemoteOrchestrator(daemon.address) as remote,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
        http.stream("GET", "/api/events") as page,
    ):
        await remote.wait_for_workers("shout", timeout_seconds=20)
        events = sse(page)
        assert (await anext(events))[0] == "snapshot"
        handle = await remote.execute_task("shout", {"text": "hello"})
        async with asyncio.timeout(20):
            async for kind, data in events:
                if kind == "task" and data["task_id"] == handle.task_id and data["status"] == "COMPLETED":
                    break
        [worker] = (await http.get("/api/overview")).json()["workers"]
        assert "shout" in worker["capabilities"]
        # The task's own address, and the store's filtered list, through the process.
        assert (await http.get(f"/tasks/{handle.task_id}")).status_code == 200
        [row] = (await http.get("/api/tasks", params={"q": handle.task_id, "status": "completed"})).json()["tasks"]
        assert (row["worker_id"], row["worker_name"]) == (worker["worker_id"], worker["name"])
        found = (await http.get(f"/api/workers/{worker['worker_id']}")).json()
        assert [t["task_id"] for t in found["tasks"]] == [handle.task_id]
        assert await daemon.stop(signal.SIGTERM) == 0  # the open stream does not hold the daemon up


async def test_the_config_file_turns_the_dashboard_on_and_a_taken_port_stops_the_daemon(
    start: Start, tmp_path: Path
) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    config = tmp_path / "wa.toml"
    config.write_text("http_port = 0\nstore = ':memory:'\n")
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address, "--config", str(config))
    taken = dashboard_url(daemon).rsplit(":", 1)[1].strip("/")
    result = await wa(
        "orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:", "--http-port", taken
    )
    assert result.code == 1 and "BindError" in result.err and "dashboard" in result.err
    assert "listening on" not in result.out
    bad = await wa(
        "orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:", "--http-port", "70000"
    )
    assert bad.code == 2 and "--http-port" in bad.err
