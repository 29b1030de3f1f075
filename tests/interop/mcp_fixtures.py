"""What the MCP tests share: a daemon with workers behind it, `wa mcp` served over HTTP in this process or
over stdio in a subprocess, and clients from the MCP SDK connected to either."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from worker_abstraction import BaseWorker, OrchestratorServer, RegistryServer, capability
from worker_abstraction.interop.mcp_server import McpServer, McpServerOptions

REFRESH_SECONDS = 0.1


class ExtraWorker(BaseWorker):
    """A second worker, with a capability of its own, that joins and leaves during a test."""

    @capability
    async def shout(self, text: str) -> str:
        """Upper-case a text."""
        return text.upper()


@contextlib.asynccontextmanager
async def daemon_on(registry: RegistryServer, **options: Any) -> AsyncIterator[OrchestratorServer]:
    async with OrchestratorServer(registry.address, port=0, **options) as daemon:
        yield daemon


@contextlib.asynccontextmanager
async def http_mcp(orchestrator: str, *, require_token: bool = False) -> AsyncIterator[tuple[McpServer, str]]:
    """`McpServer` serving streamable HTTP in this process: it and its URL."""
    options = McpServerOptions(refresh_seconds=REFRESH_SECONDS, require_token=require_token)
    async with McpServer(orchestrator, options=options) as server:
        listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(server.serve_http(port=0, ready=listening.set_result))
        try:
            async with asyncio.timeout(10):
                url = await asyncio.shield(listening)
            yield server, url
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)


def stdio_parameters(orchestrator: str, *, token: str | None = None) -> StdioServerParameters:
    """`wa mcp --stdio` as a subprocess the SDK's client starts."""
    args = ["-m", "worker_abstraction.cli", "mcp", "--stdio", "--orchestrator", orchestrator]
    args += ["--refresh-seconds", str(REFRESH_SECONDS)]
    env = {"WA_LOOP": "asyncio"} | ({"WA_TOKEN": token} if token else {})
    return StdioServerParameters(command=sys.executable, args=args, env=env)


@contextlib.asynccontextmanager
async def http_client(url: str, *, token: str | None = None, **options: Any) -> AsyncIterator[Client]:
    """The SDK's client on `url`, sending `Authorization: Bearer TOKEN` when given one."""
    if token is None:
        async with Client(url, **options) as client:
            yield client
        return
    headers = {"Authorization": f"Bearer {token}"}
    # (the transport leaves a client it is given open: closed here)
    http = httpx2.AsyncClient(headers=headers)
    async with http, Client(streamable_http_client(url, http_client=http), **options) as client:
        yield client


@contextlib.asynccontextmanager
async def mcp_client(transport: str, orchestrator: str, **options: Any) -> AsyncIterator[Client]:
    """An MCP client of `wa mcp` over `transport` ("stdio": a subprocess; "http": served here)."""
    if transport == "stdio":
        async with Client(stdio_parameters(orchestrator), **options) as client:
            yield client
        return
    async with http_mcp(orchestrator) as (_, url), http_client(url, **options) as client:
        yield client
