"""The workers the benchmark runs as `wa worker bench.workers:NoopWorker` processes (cwd = repo root), and
`bench.workers:StreamWorker` for the streaming scenario."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.chunks import numbered
from worker_abstraction import BaseWorker, TaskContext, capability


class NoopWorker(BaseWorker):
    """Capabilities that cost as little as possible, so what is measured is the framework."""

    # No slot limit (the default for an all-async worker is 100): two of them take all 256 tasks a round keeps
    # in flight, as every run before the default changed did, so the figures stay comparable.
    max_concurrent_tasks = 0

    @capability
    async def noop(self) -> None:
        """Do nothing and return None."""
        return None

    @capability
    async def numbers(self, count: int) -> list[int]:
        """The integers 0..count-1: the list a workflow's map step runs over."""
        return list(range(count))

    @capability
    async def noop_item(self, item: int = 0) -> None:
        """Do nothing with one element of a map and return None."""
        return None

    @capability
    async def sleep_ms(self, ms: int = 10) -> int:
        """Sleep `ms` milliseconds without using the CPU, then return `ms`."""
        await asyncio.sleep(ms / 1000)
        return ms


class StreamWorker(NoopWorker):
    """NoopWorker's capabilities, and handlers that stream chunks or ask for input, for the streaming scenario
    (`bench/scenarios/streaming.py`): what is measured is how the framework carries them, not the handler."""

    @capability
    async def chunks(self, ctx: TaskContext, count: int, size: int = 100) -> int:
        """Emit `count` text chunks of `size` characters (`bench.chunks.numbered`); return `count`."""
        await _emit_numbered(ctx, 0, count, size)
        return count

    @capability
    async def gated_chunks(self, ctx: TaskContext, first: int, rest: int, size: int = 100) -> int:
        """Emit `first` chunks, ask for input (the gate: answered once the readers are in place), emit `rest`
        chunks, and ask again (the end: answered once the readers are measured); return how many it emitted."""
        await _emit_numbered(ctx, 0, first, size)
        await ctx.request_input("go on?")
        await _emit_numbered(ctx, first, rest, size)
        await ctx.request_input("end?")
        return first + rest

    @capability
    async def ask(self, ctx: TaskContext) -> Any:
        """Ask for input at once; return the answer."""
        return await ctx.request_input("answer?")


async def _emit_numbered(ctx: TaskContext, start: int, count: int, size: int) -> None:
    """Emit chunks `start` .. `start + count - 1`, letting the loop run (and send them) every 256."""
    for index in range(start, start + count):
        ctx.emit(numbered(index, size))
        if index % 256 == 255:
            await asyncio.sleep(0)
