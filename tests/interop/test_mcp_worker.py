"""McpWorker wrapping an MCP server built with the MCP SDK (tests/interop/mcp_tool_server.py), over stdio (a
subprocess) and streamable HTTP: its tools become capabilities with their schemas, a task submitted through
the daemon runs the tool and returns its structured output, progress is forwarded, a failing tool fails the
task, a tool added at run time becomes a capability; and `wa worker --mcp COMMAND` with no Python written."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from tests.interop import mcp_tool_server
from tests.interop.mcp_fixtures import daemon_on
from worker_abstraction import RegistryServer, RemoteOrchestrator, TaskFailedError, TaskStatus
from worker_abstraction.interop.mcp_worker import McpWorker

pytestmark = pytest.mark.timeout(60)

STDIO_SERVER = f"{sys.executable} -m tests.interop.mcp_tool_server"


@contextlib.asynccontextmanager
async def tools_over_http() -> AsyncIterator[str]:
    """The test MCP server over streamable HTTP in this process: its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    app = mcp_tool_server.build().streamable_http_app()
    http = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=1))
    serving = asyncio.create_task(http.serve(sockets=[listener]))
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        http.should_exit = True
        await serving
        listener.close()


@contextlib.asynccontextmanager
async def mcp_server(transport: str) -> AsyncIterator[str]:
    """What McpWorker is given: the stdio command, or the URL of a server served here."""
    if transport == "stdio":
        yield STDIO_SERVER
        return
    async with tools_over_http() as url:
        yield url


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_an_mcp_servers_tools_become_capabilities_of_a_worker(
    transport: str, registry: RegistryServer, start_worker: Any
) -> None:
    async with (
        mcp_server(transport) as target,
        daemon_on(registry) as daemon,
        RemoteOrchestrator(daemon.address) as remote,
    ):
        await start_worker(McpWorker, mcp=target)
        [worker] = await remote.wait_for_workers("add", timeout_seconds=10)
        add = worker.capability("add")
        assert add is not None and add.description == "Add two integers."
        parameters = [(p.name, p.type, p.required) for p in add.parameters]
        assert parameters == [("a", "integer", True), ("b", "integer", True)]
        assert json.loads(add.output_schema)["properties"]["total"]["type"] == "integer"

        assert await (await remote.execute_task("add", {"a": 2, "b": 3})).result(timeout_seconds=10) == {"total": 5}

        counting = await remote.execute_task("count", {"n": 4})
        assert await counting.result(timeout_seconds=10) == {"result": "counted to 4"}
        reported = [(u.progress, u.progress_message) for u in counting.updates if u.status is TaskStatus.RUNNING]
        assert (0.5, "step 2") in reported and (1.0, "step 4") in reported

        with pytest.raises(TaskFailedError) as failed:
            await (await remote.execute_task("fail", {"reason": "nope"})).result(timeout_seconds=10)
        assert failed.value.error_type == "McpToolError"

        assert worker.capability("late") is None
        await (await remote.execute_task("grow", {})).result(timeout_seconds=10)
        await remote.wait_for_workers("late", timeout_seconds=10)  # (registered again with the new tool)
        late = await remote.execute_task("late", {"word": "abc"})
        assert await late.result(timeout_seconds=10) == {"result": "cba"}


async def test_wa_worker_mcp_serves_a_command_with_no_python_written(registry: RegistryServer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "worker_abstraction.cli", "worker", "--mcp", STDIO_SERVER, "--registry", registry.address),
        *("--port", "0", "--heartbeat-interval", "0.1"),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            ready = (await process.stdout.readline()).decode()
        assert ready.startswith("worker ") and " listening on " in ready
        async with daemon_on(registry) as daemon, RemoteOrchestrator(daemon.address) as remote:
            await remote.wait_for_workers("add", timeout_seconds=10)
            assert await (await remote.execute_task("add", {"a": 1, "b": 1})).result(timeout_seconds=10) == {"total": 2}
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
