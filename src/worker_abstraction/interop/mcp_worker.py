"""`McpWorker`: any MCP server's tools become capabilities of a worker (`wa worker --mcp COMMAND_OR_URL`).

It connects with the MCP SDK's client, to a command it starts (stdio) or to a URL (streamable HTTP), lists
the server's tools and serves each as a capability: the tool's input schema is the capability's parameter
schema, its output schema the capability's output schema. A task runs the tool: the tool's progress
notifications become the task's progress, its `structuredContent` (or else its text) the task's output, and
a result with `isError` fails the task. When the server says its tools changed (a `tools/list_changed`
event on a 2026-07-28 listen stream, or the notification on an earlier revision's connection), the worker
lists them again and registers again with the new set.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from worker_abstraction.capability import CapabilityDef, schema_capability
from worker_abstraction.context import TaskContext
from worker_abstraction.errors import InvalidCapabilityError, WorkerAbstractionError
from worker_abstraction.worker.base import BaseWorker

if TYPE_CHECKING:
    import mcp_types as types
    from mcp import Client

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")  # what a capability may be called


class McpToolError(WorkerAbstractionError):
    """The MCP server's tool answered with an error result (`isError`); the message is its text."""


class McpWorker(BaseWorker):
    """Serves the tools of one MCP server as capabilities.

    Args:
        registry: as for `BaseWorker`.
        mcp: the server: an `http://` or `https://` URL (streamable HTTP), or a command line that starts it
            and speaks MCP on its stdin and stdout (e.g. `npx some-mcp-server`, `python -m pkg`).
        prefix: put before each tool's name to make its capability's (e.g. `fs.`); empty: the tool's name.
        **options: the other options of `BaseWorker`.
    """

    served_mcp: ClassVar[str] = ""  # the server a `serving` subclass connects to
    served_prefix: ClassVar[str] = ""

    def __init__(
        self, registry: str | None = None, *, mcp: str | None = None, prefix: str | None = None, **options: Any
    ) -> None:
        super().__init__(registry, **options)
        self.mcp = mcp or self.served_mcp
        self.prefix = self.served_prefix if prefix is None else prefix
        if not self.mcp:
            raise ValueError("McpWorker needs an MCP server: mcp=COMMAND or mcp=URL")
        self._client: Client | None = None
        self._connection: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._tools_changed = asyncio.Event()

    @classmethod
    def serving(cls, mcp: str, *, prefix: str = "") -> type[McpWorker]:
        """A subclass whose workers serve the MCP server `mcp` (for `wa worker --mcp`, which makes a worker
        from a class and the worker flags)."""
        return type(cls.__name__, (cls,), {"served_mcp": mcp, "served_prefix": prefix})

    async def start(self) -> None:
        """Connect to the MCP server, list its tools, then serve and register them as capabilities.

        Raises:
            WorkerAbstractionError: the MCP server could not be started or reached (with why).
        """
        connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._connection = asyncio.create_task(self._connected(connected), name="wa-mcp-client")
        try:
            await connected
        except BaseException:
            await self._disconnect()
            raise
        try:
            await super().start()
        except BaseException:
            await self._disconnect()
            raise

    async def stop(self, grace_seconds: float = 10.0) -> None:
        await super().stop(grace_seconds)
        await self._disconnect()

    async def _disconnect(self) -> None:
        self._closing.set()
        if self._connection is not None:
            await asyncio.gather(self._connection, return_exceptions=True)
            self._connection = None

    # ---- the connection, held by one task from start to stop (the SDK's client is entered and left there)

    async def _connected(self, connected: asyncio.Future[None]) -> None:
        try:
            async with self._open() as client:
                self._client = client
                await self._refresh()
                connected.set_result(None)
                await self._follow(client)
        except Exception as error:
            if not connected.done():
                connected.set_exception(
                    WorkerAbstractionError(f"MCP server {self.mcp}: {type(error).__name__}: {_first(error)}")
                )
                return
            logger.error("MCP server %s: the connection ended: %s: %s", self.mcp, type(error).__name__, error)
        finally:
            self._client = None

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Client]:
        from mcp import Client, StdioServerParameters

        target: Any
        if self.mcp.startswith(("http://", "https://")):
            target = self.mcp
        else:
            command, *args = shlex.split(self.mcp)
            target = StdioServerParameters(command=command, args=args)
        async with Client(target, message_handler=self._on_message) as client:
            yield client

    async def _on_message(self, message: Any) -> None:
        from mcp_types import ToolListChangedNotification

        if isinstance(message, ToolListChangedNotification):
            self._tools_changed.set()

    async def _follow(self, client: Client) -> None:
        """Until stop: list the tools again whenever the server says they changed."""
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        async def listen() -> None:  # (2026-07-28: changes come on a listen stream)
            async with client.listen(tools_list_changed=True) as events:
                async for _ in events:
                    self._tools_changed.set()

        listening = asyncio.create_task(listen()) if client.protocol_version in MODERN_PROTOCOL_VERSIONS else None
        closing = asyncio.create_task(self._closing.wait())
        try:
            while not self._closing.is_set():
                changed = asyncio.create_task(self._tools_changed.wait())
                await asyncio.wait({changed, closing}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                if self._tools_changed.is_set() and not self._closing.is_set():
                    self._tools_changed.clear()
                    await self._refresh()
        finally:
            for task in (listening, closing):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    async def _refresh(self) -> None:
        """List the server's tools and serve them (registering again when started)."""
        client = self._client
        assert client is not None
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        definitions = [d for tool in tools if (d := self._definition(tool)) is not None]
        logger.info("MCP server %s: serving %s", self.mcp, ", ".join(d.spec.name for d in definitions) or "no tools")
        await self.set_capabilities(definitions)

    def _definition(self, tool: types.Tool) -> CapabilityDef | None:
        name = self.prefix + tool.name
        if not _NAME.match(name):
            logger.warning("MCP tool %r: %r is not a capability name; not served", tool.name, name)
            return None

        async def run(arguments: dict[str, Any], ctx: TaskContext) -> Any:
            return await self._call(tool.name, arguments, ctx)

        try:
            return schema_capability(
                name,
                run,
                description=tool.description or "",
                input_schema=tool.input_schema,
                output_schema=tool.output_schema,
            )
        except InvalidCapabilityError as error:
            logger.warning("MCP tool %r not served: %s", tool.name, error)
            return None

    async def _call(self, tool: str, arguments: dict[str, Any], ctx: TaskContext) -> Any:
        """Run one tool for a task: its progress is the task's, its structured output (or text) the task's output.

        Raises:
            McpToolError: the tool answered with an error result.
            WorkerAbstractionError: the MCP server is not connected.
        """
        client = self._client
        if client is None:
            raise WorkerAbstractionError(f"MCP server {self.mcp} is not connected")

        result = await client.call_tool(tool, arguments, progress_callback=_Progress(ctx))
        text = "\n".join(block.text for block in result.content if block.type == "text")
        if result.is_error:
            raise McpToolError(text or f"tool {tool} failed")
        if result.structured_content is not None:
            return result.structured_content
        if len(result.content) == 1 and result.content[0].type == "text":
            return text
        return [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content]


class _Progress:
    """An MCP progress callback reporting to a task: a fraction of `total` when the tool gives one, else its
    count in the message."""

    def __init__(self, ctx: TaskContext) -> None:
        self._ctx = ctx

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self._ctx.report_progress(progress / total if total else 0.0, message or ("" if total else f"{progress:g}"))


def _first(error: BaseException) -> str:
    """The first leaf of an exception group (the SDK's task groups wrap what failed), as text."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return str(error)
