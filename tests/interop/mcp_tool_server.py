"""A small MCP server built with the MCP SDK's `MCPServer`, for the McpWorker tests: run it over stdio
(`python -m tests.interop.mcp_tool_server`) or build one to serve over streamable HTTP (`build()`).

Tools: `add` (structured output), `count` (progress), `fail` (an error result) and `grow`, which adds the
tool `late` at run time and tells the client its tools changed."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel


class Sum(BaseModel):
    total: int


def build() -> MCPServer:
    server = MCPServer("test-tools")

    @server.tool()
    def add(a: int, b: int) -> Sum:
        """Add two integers."""
        return Sum(total=a + b)

    @server.tool()
    async def count(n: int, ctx: Context) -> str:
        """Count to n, reporting each step."""
        for step in range(1, n + 1):
            await ctx.report_progress(step, n, f"step {step}")
        return f"counted to {n}"

    @server.tool()
    def fail(reason: str) -> str:
        """Always fails."""
        raise ValueError(reason)

    @server.tool()
    async def grow(ctx: Context) -> str:
        """Add the tool `late`."""

        def late(word: str) -> str:
            """Added at run time."""
            return word[::-1]

        server.add_tool(late)
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            await ctx.notify_tools_changed()
        else:
            await ctx.session.send_tool_list_changed()
        return "grown"

    return server


if __name__ == "__main__":
    build().run("stdio")
