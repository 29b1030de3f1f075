"""The worker the fuzz harness runs with `wa worker _fuzz_workers:FuzzWorker` (cwd = this directory)."""

from __future__ import annotations

import asyncio

from worker_abstraction import BaseWorker, TaskContext, capability


class FuzzWorker(BaseWorker):
    """Capabilities that finish quickly whatever they are given, so every accepted task can end."""

    @capability
    async def echo(self, ctx: TaskContext, text: str, times: int = 1) -> dict[str, str]:
        """Repeat `text` (at most 3 times, so a hostile `times` cannot blow up the output)."""
        await ctx.report_progress(0.5, "echoing")
        return {"text": text * max(0, min(times, 3))}

    @capability
    async def add(self, a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @capability
    async def nap(self, seconds: float = 0.01) -> float:
        """Sleep at most one second, however long it is asked to."""
        await asyncio.sleep(max(0.0, min(seconds, 1.0)) if seconds == seconds else 0.0)
        return seconds
