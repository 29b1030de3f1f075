"""The worker the workflow chaos test runs (`wa worker _workflow_chaos_workers:WorkflowChaosWorker`, cwd = this
directory), and the ledger it keeps.

Each capability is a pure function of its parameters (`compute`, which the test also uses to know every
step's right output), taking `millis` ms to run. Each run appends lines to the ledger file `ledger` (a path the
test chooses): `start` when the handler begins, then one of `end` (it returned its output), `error` (it
raised) or `cancel` (its cancel was asked for), written when the handler finishes. So a completed task appears
once on an `end` line for every time its handler ran to the end, whichever process ran it.

A line is `<event> <task_id> <monotonic ns> <pid>`: the clock is the machine's, shared by both workers, so the
test can also tell how many elements of a map step ran at once.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from worker_abstraction import BaseWorker, TaskContext, capability

START, END, ERROR, CANCEL = "start", "end", "error", "cancel"


class PlannedFailureError(Exception):
    """What the `fail` step raises, on purpose."""


def compute(capability: str, params: dict[str, Any]) -> Any:
    """What the step `capability` returns given `params` (`millis` and `ledger` aside).

    Raises:
        PlannedFailureError: for `fail`, always.
    """
    match capability:
        case "seed":
            return int(params["n"])
        case "add":
            return int(params["value"]) + int(params["amount"])
        case "spread":  # the list a map step goes over
            return [int(params["value"]) + i for i in range(int(params["count"]))]
        case "square":
            return int(params["value"]) ** 2
        case "total":
            return sum(int(v) for v in params["values"])
        case "fail":
            raise PlannedFailureError(f"planned failure at {params['value']}")
        case "notify":
            return {"step": params["step"], "error": params["error"]}
    raise ValueError(f"no step {capability!r}")


def _note(ledger: str, event: str, task_id: str) -> None:
    if ledger:
        # One short write on a file opened for appending: whole lines, even from two processes.
        with open(ledger, "a") as file:
            file.write(f"{event} {task_id} {time.monotonic_ns()} {os.getpid()}\n")


async def _run(ctx: TaskContext, ledger: str, millis: int, made: Callable[[], Any]) -> Any:
    """`made()` after `millis` ms, with the ledger's lines; a cancel asked for meanwhile ends it at once."""
    _note(ledger, START, ctx.task_id)
    try:
        async with asyncio.timeout(millis / 1000):
            await ctx.wait_cancel_requested()
    except TimeoutError:  # its time is up and no cancel came: the work is done
        pass
    except asyncio.CancelledError:  # stopped outright (past the grace period, or the worker stopping)
        _note(ledger, CANCEL, ctx.task_id)
        raise
    else:
        _note(ledger, CANCEL, ctx.task_id)
        raise RuntimeError("canceled")  # (the worker ends it CANCELED whatever the handler raises now)
    try:
        output = made()
    except Exception:
        _note(ledger, ERROR, ctx.task_id)
        raise
    _note(ledger, END, ctx.task_id)
    return output


class WorkflowChaosWorker(BaseWorker):
    max_concurrent_tasks = 16

    @capability
    async def seed(self, n: int, millis: int, ctx: TaskContext, ledger: str = "") -> int:
        """n."""
        return await _run(ctx, ledger, millis, lambda: compute("seed", {"n": n}))

    @capability
    async def add(self, value: int, amount: int, millis: int, ctx: TaskContext, ledger: str = "") -> int:
        """value + amount."""
        return await _run(ctx, ledger, millis, lambda: compute("add", {"value": value, "amount": amount}))

    @capability
    async def spread(self, value: int, count: int, millis: int, ctx: TaskContext, ledger: str = "") -> list[int]:
        """value, value + 1, ... (count numbers)."""
        return await _run(ctx, ledger, millis, lambda: compute("spread", {"value": value, "count": count}))

    @capability
    async def square(self, value: int, millis: int, ctx: TaskContext, ledger: str = "") -> int:
        """value squared."""
        return await _run(ctx, ledger, millis, lambda: compute("square", {"value": value}))

    @capability
    async def total(self, values: list[int], millis: int, ctx: TaskContext, ledger: str = "") -> int:
        """The sum of the values."""
        return await _run(ctx, ledger, millis, lambda: compute("total", {"values": values}))

    @capability
    async def fail(self, value: int, millis: int, ctx: TaskContext, ledger: str = "") -> int:
        """Raises PlannedFailureError, on purpose."""
        return await _run(ctx, ledger, millis, lambda: compute("fail", {"value": value}))

    @capability
    async def notify(self, step: str, error: str, millis: int, ctx: TaskContext, ledger: str = "") -> dict[str, str]:
        """What it was told: the failed step and its error (a workflow's `on_failure` step)."""
        return await _run(ctx, ledger, millis, lambda: compute("notify", {"step": step, "error": error}))
