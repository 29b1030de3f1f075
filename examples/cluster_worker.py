"""The worker `make demo-cluster` runs: `square` takes a moment and records each attempt it starts.

Every attempt appends one line, `TASK_ID ATTEMPT`, to the file `WA_DEMO_LEDGER` names (one file for all
workers, appended to atomically), so the demo can check that no attempt was ever started twice.
"""

from __future__ import annotations

import asyncio
import os

from worker_abstraction import BaseWorker, TaskContext, capability


class ClusterWorker(BaseWorker):
    """Squares numbers, slowly enough that some are running whenever a process is killed."""

    max_concurrent_tasks = 16

    @capability
    async def square(self, n: int, ctx: TaskContext, millis: int = 50) -> dict[str, int]:
        """Return n squared after `millis` milliseconds.

        Args:
            n: the number.
            ctx: injected task context.
            millis: how long the work takes.
        """
        ledger = os.environ.get("WA_DEMO_LEDGER")
        if ledger:
            _record(ledger, f"{ctx.task_id} {ctx.attempt}\n")
        await asyncio.sleep(millis / 1000)
        return {"n": n, "square": n * n}


def _record(ledger: str, line: str) -> None:
    # One short write to a file opened for appending: one atomic append, whichever worker makes it.
    descriptor = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)
