"""Hostile bodies on the agent protocols' HTTP routes: a request past the bound, declared or streamed, is
refused 413 and never held whole; the routes keep serving after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.dashboard.conftest import DashboardDaemon
from tests.interop.mcp_fixtures import daemon_on, http_mcp
from worker_abstraction import RegistryServer
from worker_abstraction.interop.http_bounds import MAX_BODY_BYTES

pytestmark = pytest.mark.timeout(30)

BIG = b"x" * (MAX_BODY_BYTES + 1)


async def _streamed() -> AsyncIterator[bytes]:  # (no Content-Length: chunked)
    for _ in range(MAX_BODY_BYTES // 2**16 + 2):
        yield b"y" * 2**16


async def _refused_then_served(url: str, http: httpx.AsyncClient, **headers: Any) -> None:
    declared = await http.post(url, content=BIG, headers={"content-type": "application/json", **headers})
    assert declared.status_code == 413 and "at most" in declared.json()["error"]
    streamed = await http.post(url, content=_streamed(), headers={"content-type": "application/json", **headers})
    assert streamed.status_code == 413
    small = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "nope"}, headers=headers)
    assert small.status_code != 413


async def test_the_a2a_routes_refuse_a_body_past_the_bound(registry: RegistryServer, start_worker: Any) -> None:
    await start_worker()
    async with DashboardDaemon(registry.address) as team, httpx.AsyncClient(timeout=10) as http:
        assert team.dashboard is not None
        base = team.dashboard.url.rstrip("/")
        await _refused_then_served(f"{base}/a2a", http)
        await _refused_then_served(f"{base}/a2a/rest/message:send", http)


async def test_wa_mcp_over_http_refuses_a_body_past_the_bound(registry: RegistryServer, start_worker: Any) -> None:
    await start_worker()
    async with (
        daemon_on(registry) as daemon,
        http_mcp(daemon.address) as (_, url),
        httpx.AsyncClient(timeout=10) as http,
    ):
        await _refused_then_served(url, http, accept="application/json, text/event-stream")
