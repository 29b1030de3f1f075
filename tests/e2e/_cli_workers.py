"""The worker the `wa` daily-use tests run with `wa worker _cli_workers:DailyWorker` (cwd = this directory)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from worker_abstraction import BaseWorker, TaskContext, capability


class DailyWorker(BaseWorker):
    """A capability that answers at once, and one that runs until it is canceled."""

    @capability
    async def shout(self, ctx: TaskContext, text: str) -> dict[str, str]:
        """Upper-case `text`."""
        await ctx.report_progress(0.5, "shouting")
        return {"result": text.upper()}

    @capability
    async def linger(self, ctx: TaskContext, marker: str = "", seconds: float = 60) -> str:
        """Run until asked to cancel (at most `seconds`); on the cancel, write `marker` for the test to find."""
        await ctx.report_progress(0.0, "lingering")
        async with asyncio.timeout(seconds):
            await ctx.wait_cancel_requested()
        if marker:
            Path(marker).write_text("canceled")  # noqa: ASYNC240  # one small write; the test reads it after
        raise RuntimeError("stopped on request")
