"""A worker whose capabilities are workflow steps; each run that completes is appended to a ledger file
(`ledger`: a path the test chooses), one line per task id, so the test can count runs across processes."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from worker_abstraction import BaseWorker, TaskContext, capability


def _ran(ledger: str, ctx: TaskContext) -> None:
    if ledger:
        with open(ledger, "a") as file:  # (one short append per task: atomic on a local file)
            file.write(f"{ctx.task_id}\n")


class WorkflowWorker(BaseWorker):
    max_concurrent_tasks = 16

    @capability
    async def numbers(self, count: int, ctx: TaskContext, ledger: str = "") -> list[int]:
        """The numbers 1..count."""
        _ran(ledger, ctx)
        return list(range(1, count + 1))

    @capability
    async def square(self, value: int, ctx: TaskContext, ledger: str = "", until_file: str = "") -> int:
        """value squared, once `until_file` exists (the test's gate; none: at once)."""
        while until_file and not os.path.exists(until_file):  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.01)
        _ran(ledger, ctx)
        return value * value

    @capability
    async def total(self, values: list[Any], ctx: TaskContext, ledger: str = "") -> int:
        """The sum of the values."""
        _ran(ledger, ctx)
        return sum(values)
