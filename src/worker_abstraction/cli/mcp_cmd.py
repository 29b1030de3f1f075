"""Serve the team's capabilities as MCP tools: an MCP client (an agent, an IDE) sees every capability the
orchestrator daemon's live workers offer as a tool, and calling one runs a task through the daemon.

Over stdio (the default, or --stdio) the client starts this command and speaks MCP on its stdin and stdout;
nothing else is written to stdout. With --http-port it serves streamable HTTP at
http://HOST:PORT/mcp (HOST: --http-host, 127.0.0.1 by default) and prints one line to stdout once it
listens: `mcp serving http://HOST:PORT/mcp`.

Tools appear and disappear as workers join and leave (the daemon's workers are read every
--refresh-seconds), and connected clients are notified (tools/list_changed). A tool's input schema comes
from the capability's parameters; a capability that declares an output schema returns structuredContent.
A task's progress becomes MCP progress notifications; a question the task asks becomes an input-required
result (MCP 2026-07-28) or an elicitation request (earlier revisions).

Credentials: the daemon is reached with --token (WA_TOKEN). Over HTTP each request's
`Authorization: Bearer TOKEN` is sent to the daemon as the caller's own; when this command has a token
itself, HTTP requests without one are refused (401).

On SIGINT/SIGTERM (or when a stdio client closes stdin) it stops and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging

from worker_abstraction.cli import UsageError, add_orchestrator_argument
from worker_abstraction.cli.config import Settings

NAME = "mcp"
SUMMARY = "serve the team's capabilities as MCP tools (stdio or streamable HTTP)"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa mcp --orchestrator 127.0.0.1:50052
  wa mcp --http-port 8765 --orchestrator 127.0.0.1:50052
"""

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    add_orchestrator_argument(parser, settings)
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument(
        "--stdio", action="store_true", help="speak MCP on stdin and stdout (the default without --http-port)"
    )
    transport.add_argument(
        "--http-port", type=int, metavar="PORT", help="serve streamable HTTP on this port (0 picks a free one)"
    )
    parser.add_argument("--http-host", default="127.0.0.1", metavar="HOST", help="interface to serve HTTP on")
    parser.add_argument(
        "--refresh-seconds",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often the daemon's workers are read for a change of tools",
    )


async def run(args: argparse.Namespace) -> int:
    from worker_abstraction.cli import Interrupted, unless_interrupted
    from worker_abstraction.cli.tls import tls_of
    from worker_abstraction.interop.mcp_server import McpServer, McpServerOptions

    if args.refresh_seconds <= 0:
        raise UsageError(f"--refresh-seconds must be positive, got {args.refresh_seconds}")
    http = args.http_port is not None
    if http and not 0 <= args.http_port <= 65535:
        raise UsageError(f"--http-port must be 0..65535, got {args.http_port}")
    options = McpServerOptions(
        refresh_seconds=args.refresh_seconds, tls=tls_of(args), require_token=http and bool(args.token)
    )
    async with McpServer(args.orchestrator, options=options) as server:
        if http:
            # (uvicorn stops gracefully on SIGINT/SIGTERM itself, and then serve_http returns)
            await server.serve_http(
                host=args.http_host, port=args.http_port, ready=lambda url: print(f"mcp serving {url}", flush=True)
            )
            return 0
        with contextlib.suppress(Interrupted):
            await unless_interrupted(server.serve_stdio())
    return 0
