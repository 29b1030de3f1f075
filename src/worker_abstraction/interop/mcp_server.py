"""`McpServer`: the team's capabilities as MCP tools (`wa mcp`), served over stdio or streamable HTTP.

Built on the MCP SDK's low-level `Server`, because the tools are not this process's functions: they are the
capabilities the orchestrator daemon's live workers offer now (`mcp_tools.ToolWatch`), and each call is a
task on the daemon (`mcp_calls`), so its scheduling, retries and credentials apply.

When the tools change, clients are told as their protocol revision has it: on 2026-07-28 a
`notifications/tools/list_changed` event on their `subscriptions/listen` streams; on earlier revisions the
same notification on the connection (stdio, or the HTTP session's standalone stream).

Credentials: over stdio every call carries this process's token (`bearer.use_token`, `wa --token`). Over
HTTP a request's `Authorization: Bearer TOKEN` is sent on as the caller's own token, so the daemon records
and checks the caller's principal; with `require_token` a request without one is refused (401).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from grpc import aio

from worker_abstraction import _rpc
from worker_abstraction._targets import failover_target
from worker_abstraction.bearer import bearer_interceptors
from worker_abstraction.errors import WorkerAbstractionError
from worker_abstraction.interop.mcp_tools import TeamTool, ToolWatch, tools_of
from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator
from worker_abstraction.tls import TLSConfig

if TYPE_CHECKING:
    import mcp_types as types
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server
    from mcp.server.session import ServerSession
    from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

_MAX_CALLERS = 64  # daemon connections kept for callers' tokens (the least recently used is closed)
_MAX_LEGACY_SESSIONS = 1024  # earlier-revision connections told of tool changes (the oldest is dropped)
_GRACE_SECONDS = 1  # how long a stopping HTTP server waits for open requests and streams


@dataclass(frozen=True, slots=True)
class McpServerOptions:
    """How `McpServer` talks to the daemon and presents itself.

    Attributes:
        name: the server's name in MCP's server info.
        refresh_seconds: how often the daemon's workers are read for a change of tools.
        tls: reach the daemon over TLS (None: plaintext).
        call_timeout_seconds: deadline of each unary call to the daemon.
        require_token: (HTTP) refuse requests without `Authorization: Bearer TOKEN` (with 401).
    """

    name: str = "worker-abstraction"
    refresh_seconds: float = 1.0
    tls: TLSConfig | None = None
    call_timeout_seconds: float = 30.0
    require_token: bool = False


class McpServer:
    """The capabilities of the daemon's live workers as MCP tools.

    `async with McpServer(address) as server:` then `await server.serve_stdio()` or
    `await server.serve_http(port=0)`.

    Args:
        orchestrator: host:port of the orchestrator daemon.
        options: see `McpServerOptions`.
    """

    def __init__(self, orchestrator: str, *, options: McpServerOptions | None = None) -> None:
        self.options = options or McpServerOptions()
        self.orchestrator_address = orchestrator
        self._own = RemoteOrchestrator(
            orchestrator, tls=self.options.tls, call_timeout_seconds=self.options.call_timeout_seconds
        )
        self._callers: OrderedDict[str, RemoteOrchestrator] = OrderedDict()
        self._watch = ToolWatch(self._own.workers, self._tools_changed, refresh_seconds=self.options.refresh_seconds)
        self._legacy: list[ServerSession] = []
        self._server = self._build()

    @property
    def tools(self) -> dict[str, TeamTool]:
        """The tools as of the latest read of the daemon's workers."""
        return self._watch.tools

    async def start(self) -> None:
        """Read the tools and start watching them.

        Raises:
            OrchestratorUnavailableError: the daemon could not be reached.
            PermissionDeniedError: the daemon refused this process's credentials.
        """
        await self._watch.start()

    async def aclose(self) -> None:
        await self._watch.aclose()
        for remote in [self._own, *self._callers.values()]:
            await remote.aclose()
        self._callers.clear()

    async def __aenter__(self) -> McpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def serve_stdio(self) -> None:
        """Serve one client over this process's stdin and stdout until stdin closes."""
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read_stream, write_stream):
            await self._server.run(read_stream, write_stream, self._server.create_initialization_options())

    async def serve_http(
        self, *, host: str = "127.0.0.1", port: int = 0, ready: Callable[[str], None] | None = None
    ) -> None:
        """Serve streamable HTTP at http://HOST:PORT/mcp until canceled; `ready(url)` is called once it listens.

        Raises:
            BindError: the address cannot be listened on.
        """
        import uvicorn

        from worker_abstraction.errors import BindError

        app: ASGIApp = self._server.streamable_http_app(host=host)
        if self.options.require_token:
            app = _bearer_required(app)
        from worker_abstraction.interop.http_bounds import BodyBound

        app = BodyBound(app)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
        except OSError as error:
            listener.close()
            raise BindError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
        listener.listen(128)  # (connections made as soon as `ready` is called wait in the backlog)
        bound = listener.getsockname()[1]
        where = f"[{host}]" if family == socket.AF_INET6 else host
        # log_config=None: uvicorn adds no handlers of its own (the CLI configures logging). Its graceful
        # shutdown is bounded: open event streams (listen streams, standalone streams) are not waited out.
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", lifespan="on", timeout_graceful_shutdown=_GRACE_SECONDS
        )
        http = uvicorn.Server(config)
        url = f"http://{where}:{bound}/mcp"
        serving = asyncio.ensure_future(http.serve(sockets=[listener]))
        if ready is not None:
            ready(url)
        logger.info("serving MCP at %s", url)
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:  # stopped: shut the server down gracefully, then be canceled
            http.should_exit = True
            await serving
            raise
        finally:
            listener.close()

    # ---- the MCP handlers ------------------------------------------------------------------------------

    def _build(self) -> Server[Any]:
        import mcp_types as types
        from mcp.server.lowlevel import NotificationOptions, Server
        from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
        from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler

        class _TeamServer(Server[Any]):
            # Every transport's handshake offers tools.listChanged (the HTTP manager asks with no options).
            def create_initialization_options(self, notification_options: Any = None, *args: Any, **kw: Any) -> Any:
                chosen = notification_options or NotificationOptions(tools_changed=True)
                return super().create_initialization_options(chosen, *args, **kw)

        self._bus = InMemorySubscriptionBus()
        server = _TeamServer(
            self.options.name,
            version=_version(),
            get_tool_input_schema=lambda name: tool.input_schema if (tool := self.tools.get(name)) else None,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=ListenHandler(self._bus),
        )
        server.add_notification_handler("notifications/initialized", types.NotificationParams, self._initialized)
        # The request state of an input_required result names a task: sealed, so a client cannot forge one.
        server.middleware.append(RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience=server.name))
        return server

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        import mcp_types as types

        tools = await self._tools_for(ctx)
        return types.ListToolsResult(tools=[tool.definition() for tool in tools.values()])

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        import mcp_types as types
        from mcp.shared.exceptions import MCPError

        from worker_abstraction.interop.mcp_calls import call_tool

        tool = self.tools.get(params.name)
        if tool is None:
            tool = (await self._tools_for(ctx)).get(params.name)  # (a worker that joined since the last read)
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool: {params.name}")
        return await call_tool(self._orchestrator_for(ctx), tool, params, ctx)

    async def _tools_for(self, ctx: ServerRequestContext[Any, Any]) -> dict[str, TeamTool]:
        """The tools, read with the caller's own token when it has one (so a refused token lists nothing)."""
        import mcp_types as types
        from mcp.shared.exceptions import MCPError

        if _token_of(ctx) is None:
            return self.tools
        try:
            return tools_of(await self._orchestrator_for(ctx).workers())
        except WorkerAbstractionError as error:
            raise MCPError(types.INVALID_REQUEST, f"refused by the orchestrator: {error}") from error

    async def _initialized(self, ctx: ServerRequestContext[Any, Any], params: types.NotificationParams) -> None:
        self._legacy.append(ctx.session)
        del self._legacy[:-_MAX_LEGACY_SESSIONS]

    async def _tools_changed(self, tools: dict[str, TeamTool]) -> None:
        from mcp.shared.subscriptions import ToolsListChanged

        await self._bus.publish(ToolsListChanged())
        for session in list(self._legacy):
            try:
                await session.send_tool_list_changed()
            except Exception:  # that connection is gone (whatever its transport raises): forget it
                with contextlib.suppress(ValueError):
                    self._legacy.remove(session)

    def _orchestrator_for(self, ctx: ServerRequestContext[Any, Any]) -> RemoteOrchestrator:
        """This process's daemon client, or one that sends the HTTP caller's own token."""
        token = _token_of(ctx)
        if token is None:
            return self._own
        remote = self._callers.get(token)
        if remote is None:
            remote = RemoteOrchestrator(
                self.orchestrator_address,
                call_timeout_seconds=self.options.call_timeout_seconds,
                channel_factory=lambda address: _caller_channel(address, token, self.options.tls),
            )
            self._callers[token] = remote
            if len(self._callers) > _MAX_CALLERS:
                _, oldest = self._callers.popitem(last=False)
                _close_later(oldest)
        self._callers.move_to_end(token)
        return remote


def _token_of(ctx: ServerRequestContext[Any, Any]) -> str | None:
    request = ctx.request
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    scheme, _, token = str(headers.get("authorization", "")).partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _caller_channel(address: str, token: str, tls: TLSConfig | None) -> aio.Channel:
    """A channel to the daemon sending `token` alone (not this process's own)."""
    target, extra = failover_target(address)
    options = _rpc.CHANNEL_OPTIONS + extra
    interceptors = bearer_interceptors(token)
    if tls is None:
        return aio.insecure_channel(target, options=options, interceptors=interceptors)
    if tls.server_name is not None:
        options = [*options, ("grpc.ssl_target_name_override", tls.server_name)]
    return aio.secure_channel(target, tls.channel_credentials(), options=options, interceptors=interceptors)


_closing: set[Any] = set()


def _close_later(remote: RemoteOrchestrator) -> None:
    closing = asyncio.ensure_future(remote.aclose())
    _closing.add(closing)
    closing.add_done_callback(_closing.discard)


def _bearer_required(app: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                from starlette.responses import JSONResponse

                refusal = JSONResponse(
                    {"error": "unauthorized", "error_description": "send Authorization: Bearer TOKEN"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await refusal(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("worker-abstraction")
    except PackageNotFoundError:
        return ""
