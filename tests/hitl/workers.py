"""Workers whose handlers ask for input and stream output, for the human-in-the-loop tests."""

from __future__ import annotations

import asyncio
from typing import Any

from worker_abstraction import BaseWorker, TaskContext, capability

APPROVAL_SCHEMA = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
    "required": ["approved"],
}


class AskingWorker(BaseWorker):
    """Asks questions, streams chunks."""

    name = "asking-worker"

    @capability(description="Ask whether to go on, then answer with what was said")
    async def review(self, item: str, ctx: TaskContext, wait: float = 0) -> dict[str, Any]:
        ctx.report_progress(0.1, "asking")
        answer = await ctx.request_input(f"Ship {item}?", schema=APPROVAL_SCHEMA, timeout=wait or None)
        return {"item": item, "answer": answer}

    @capability(description="Ask twice")
    async def twice(self, ctx: TaskContext) -> list[Any]:
        first = await ctx.request_input("first?")
        second = await ctx.request_input("second?", schema={"type": "integer"})
        return [first, second]

    @capability(description="Stream count numbered text chunks, then return how many")
    async def tokens(self, count: int, ctx: TaskContext, size: int = 8) -> int:
        for index in range(count):
            ctx.emit(f"{index:0{size}d}")
            if index % 256 == 255:
                await asyncio.sleep(0)
        return count

    @capability(description="Stream JSON rows")
    async def rows(self, count: int, ctx: TaskContext) -> str:
        for index in range(count):
            ctx.emit({"row": index}, last=index == count - 1)
        return "done"

    @capability(description="Return at once")
    async def noop(self) -> str:
        return "ok"
