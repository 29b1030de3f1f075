"""The worker the chaos suite runs with `wa worker _chaos_workers:ChaosWorker` (cwd = this directory)."""

from __future__ import annotations

import asyncio

from worker_abstraction import BaseWorker, capability


def expected_output(n: int) -> dict[str, int]:
    """What `work(n, ...)` returns; the checker compares every COMPLETED output with it."""
    return {"n": n, "square": n * n}


class ChaosWorker(BaseWorker):
    max_concurrent_tasks = 2

    @capability
    async def work(self, n: int, millis: int) -> dict[str, int]:
        """Take `millis` ms, then return a result that depends on `n` alone."""
        await asyncio.sleep(millis / 1000)  # the workload under test
        return expected_output(n)
