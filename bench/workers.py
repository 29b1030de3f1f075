"""The workers the benchmark runs as `wa worker bench.workers:NoopWorker` processes (cwd = repo root)."""

from __future__ import annotations

import asyncio

from worker_abstraction import BaseWorker, capability


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
