"""A worker whose capabilities are workflow steps, and a ledger of every task it ran (by task id)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from tests.conftest import GATES
from worker_abstraction import BaseWorker, TaskContext, capability

RAN: Counter[str] = Counter()  # task id -> how many times a handler ran it to its end
RUNNING: Counter[str] = Counter()  # capability -> how many run now
MOST: Counter[str] = Counter()  # capability -> the most that ran at once


class StepWorker(BaseWorker):
    @capability
    async def numbers(self, count: int, ctx: TaskContext, size: int = 2) -> dict[str, Any]:
        """Numbers 1..count, and in chunks of `size`."""
        values = list(range(1, count + 1))
        RAN[ctx.task_id] += 1
        return {"values": values, "chunks": [values[i : i + size] for i in range(0, count, size)]}

    @capability
    async def total(self, values: list[Any], ctx: TaskContext) -> int:
        """The sum of a list of numbers (or of lists of numbers)."""
        RUNNING["total"] += 1
        MOST["total"] = max(MOST["total"], RUNNING["total"])
        try:
            await asyncio.sleep(0)
            RAN[ctx.task_id] += 1
            return sum(sum(v) if isinstance(v, list) else v for v in values)
        finally:
            RUNNING["total"] -= 1

    @capability
    async def double(self, value: int, ctx: TaskContext) -> int:
        RAN[ctx.task_id] += 1
        return value * 2

    @capability
    async def fail(self, message: str, ctx: TaskContext) -> None:
        """Always fails."""
        RAN[ctx.task_id] += 1
        raise ValueError(message)

    @capability
    async def gate(self, name: str, ctx: TaskContext) -> str:
        """Waits for the test to open the gate called `name`."""
        await GATES.async_gate(name).wait()
        RAN[ctx.task_id] += 1
        return name

    @capability
    async def note(self, ctx: TaskContext, step: str = "", error: str = "") -> dict[str, str]:
        """What an on_failure step is told."""
        RAN[ctx.task_id] += 1
        return {"step": step, "error": error}
