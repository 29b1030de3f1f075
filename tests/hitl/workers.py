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


class FreeingWorker(BaseWorker):
    """Its questions free the slot (one slot only): the task runs again, from the start, once answered."""

    name = "freeing-worker"
    starts = 0  # handler starts, across every instance: a replay runs the handler again

    @capability(description="Ask two questions, freeing the slot each time", frees_slot_on_input=True,
                max_concurrent_tasks=1)  # fmt: skip
    async def interview(self, who: str, ctx: TaskContext) -> dict[str, Any]:
        FreeingWorker.starts += 1
        name = await ctx.request_input(f"{who}: your name?", schema={"type": "string"})
        age = await ctx.request_input(f"{name}: your age?", schema={"type": "integer", "minimum": 0})
        return {"who": who, "name": name, "age": age}

    @capability(description="Return at once", max_concurrent_tasks=1)
    async def quick(self) -> str:
        return "quick"
