"""`wa mcp` with the MCP SDK's own client: the team's capabilities as tools, over stdio (a subprocess) and
streamable HTTP; calls with progress, a failed task, protocol errors, and the list changing as workers
leave."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp import MCPError
from mcp_types import INVALID_PARAMS, ToolListChangedNotification

from tests.conftest import eventually
from tests.interop.mcp_fixtures import ExtraWorker, daemon_on, http_client, http_mcp, mcp_client
from worker_abstraction import RegistryServer

pytestmark = pytest.mark.timeout(60)

TRANSPORTS = ["stdio", "http"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_lists_the_capabilities_as_tools(
    transport: str, registry: RegistryServer, start_worker: Any
) -> None:
    await start_worker()
    async with daemon_on(registry) as daemon, mcp_client(transport, daemon.address) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"echo", "explode", "sleepy"} <= set(tools)
        echo = tools["echo"]
        assert echo.description is not None and echo.description.startswith("Repeat a text.")
        assert echo.input_schema["type"] == "object"
        assert echo.input_schema["required"] == ["text"]
        assert echo.input_schema["properties"]["text"]["type"] == "string"
        assert echo.input_schema["properties"]["times"]["type"] == "integer"
        # (its return annotation, dict[str, str], is its output schema)
        assert echo.output_schema == {"type": "object", "additionalProperties": {"type": "string"}}
        assert tools["sleepy"].output_schema == {
            "type": "object",
            "properties": {"result": {"type": "number"}},
            "required": ["result"],
        }
        assert tools["explode"].output_schema is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_call_runs_a_task_and_reports_its_progress(
    transport: str, registry: RegistryServer, start_worker: Any
) -> None:
    await start_worker()
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with daemon_on(registry) as daemon, mcp_client(transport, daemon.address) as client:
        result = await client.call_tool("echo", {"text": "ab", "times": 2}, progress_callback=on_progress)
        assert not result.is_error
        [content] = result.content
        assert content.type == "text" and content.text == '{"text": "abab"}'
        assert result.structured_content == {"text": "abab"}
        assert (0.5, 1.0, "halfway") in progress


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_failed_task_is_a_tool_error(transport: str, registry: RegistryServer, start_worker: Any) -> None:
    await start_worker()
    async with daemon_on(registry) as daemon, mcp_client(transport, daemon.address) as client:
        result = await client.call_tool("explode", {"message": "kaput"})
        assert result.is_error
        [content] = result.content
        assert content.type == "text" and "ValueError" in content.text and "kaput" in content.text
        assert result.structured_content is None
        slept = await client.call_tool("sleepy", {"seconds": 0})
        assert not slept.is_error and slept.structured_content == {"result": 0}


async def test_unknown_tools_and_bad_arguments_are_protocol_errors(registry: RegistryServer, start_worker: Any) -> None:
    await start_worker()
    async with daemon_on(registry) as daemon, mcp_client("http", daemon.address) as client:
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("no_such_tool", {})
        assert unknown.value.error.code == INVALID_PARAMS
        with pytest.raises(MCPError) as invalid:
            await client.call_tool("echo", {"text": 3})
        assert invalid.value.error.code == INVALID_PARAMS


async def test_listeners_see_the_list_change_as_a_worker_joins_and_leaves(
    registry: RegistryServer, start_worker: Any
) -> None:
    await start_worker()
    async with (
        daemon_on(registry) as daemon,
        http_mcp(daemon.address) as (server, url),
        http_client(url) as client,
        client.listen(tools_list_changed=True) as changes,
    ):
        events = aiter(changes)
        extra = await start_worker(ExtraWorker)
        async with asyncio.timeout(10):
            await anext(events)
        await eventually(lambda: "shout" in server.tools, what="the watch sees the new worker")
        assert "shout" in {tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools}
        await extra.stop(grace_seconds=0.5)
        async with asyncio.timeout(10):
            await anext(events)
        await eventually(lambda: "shout" not in server.tools, what="the watch sees the worker leave")
        assert "shout" not in {tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_earlier_revision_client_is_notified_on_its_connection(
    transport: str, registry: RegistryServer, start_worker: Any
) -> None:
    await start_worker()
    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ToolListChangedNotification):
            changed.set()

    async with (
        daemon_on(registry) as daemon,
        mcp_client(transport, daemon.address, mode="legacy", message_handler=on_message) as client,
    ):
        assert client.server_capabilities.tools is not None and client.server_capabilities.tools.list_changed
        extra = await start_worker(ExtraWorker)
        async with asyncio.timeout(10):
            await changed.wait()
        assert "shout" in {tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools}
        changed.clear()
        await extra.stop(grace_seconds=0.5)
        async with asyncio.timeout(10):
            await changed.wait()
        assert "shout" not in {tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools}
