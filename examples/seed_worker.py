"""The seed's example worker (design.md section 4.2) written with the worker SDK.

Run it from the repository root:

    wa worker examples.seed_worker:SeedWorker --port 0 --registry 127.0.0.1:50051
"""

from __future__ import annotations

import asyncio

from worker_abstraction import BaseWorker, TaskContext, capability

# The seed sleeps a whole second to "simulate work"; a fifth is enough to watch RUNNING go by.
_SIMULATED_WORK_SECONDS = 0.2


class SeedWorker(BaseWorker):
    """The seed's two tools: one that succeeds and one that always fails."""

    @capability
    async def dummy_processor(self, ctx: TaskContext, input: str = "default_input") -> dict[str, str]:
        """A simple processor that converts input text to uppercase.

        Args:
            ctx: Injected task context.
            input: The text to process.

        Returns:
            The processed text and the name of the worker that processed it.
        """
        await ctx.report_progress(0.0, "processing")
        await asyncio.sleep(_SIMULATED_WORK_SECONDS)
        await ctx.report_progress(1.0, "done")
        return {"result": f"Processed: {input.upper()}", "worker": self.name}

    @capability
    async def error_simulator(self, ctx: TaskContext) -> None:
        """A tool that always fails, for testing error handling.

        Args:
            ctx: Injected task context.

        Raises:
            ValueError: Always; the task ends FAILED with this message.
        """
        await ctx.report_progress(0.5, "about to fail")
        raise ValueError("Simulated error during task execution.")
