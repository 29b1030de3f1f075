"""The whole way round: an MCP server built with the SDK (tests/interop/mcp_tool_server.py), joined as a worker
by McpWorker, served back out by `wa mcp`, and used by the SDK's own client: its tools are listed with their
schemas, a call runs with progress and structured output, and the list changes when the worker leaves."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import eventually
from tests.interop.mcp_fixtures import daemon_on, http_client, http_mcp
from tests.interop.test_mcp_worker import STDIO_SERVER
from worker_abstraction import RegistryServer
from worker_abstraction.interop.mcp_worker import McpWorker

pytestmark = pytest.mark.timeout(60)


async def test_an_sdk_client_uses_an_sdk_server_through_mcp_worker_and_wa_mcp(
    registry: RegistryServer, start_worker: Any
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with (
        daemon_on(registry) as daemon,
        http_mcp(daemon.address) as (server, url),
        http_client(url) as client,
        client.listen(tools_list_changed=True) as changes,
    ):
        events = aiter(changes)
        worker = await start_worker(McpWorker, mcp=STDIO_SERVER)
        await eventually(lambda: "count" in server.tools, timeout_seconds=20, what="wa mcp sees the wrapped tools")
        tools = {tool.name: tool for tool in (await client.list_tools(cache_mode="refresh")).tools}
        assert {"add", "count", "fail", "grow"} <= set(tools)
        assert tools["add"].input_schema["properties"]["a"]["type"] == "integer"
        assert tools["add"].output_schema is not None
        assert tools["add"].output_schema["properties"]["total"]["type"] == "integer"

        added = await client.call_tool("add", {"a": 20, "b": 22})
        assert not added.is_error and added.structured_content == {"total": 42}
        counted = await client.call_tool("count", {"n": 4}, progress_callback=on_progress)
        assert not counted.is_error and counted.structured_content == {"result": "counted to 4"}
        assert (0.5, 1.0, "step 2") in progress
        failed = await client.call_tool("fail", {"reason": "nope"})
        assert failed.is_error and "McpToolError" in failed.content[0].text  # type: ignore[union-attr]

        await worker.stop(grace_seconds=0.5)
        async with asyncio.timeout(10):
            while "add" in server.tools:  # (changes that are not this one: the first list, say)
                await anext(events)
        assert "add" not in {tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools}
