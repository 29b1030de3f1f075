"""A worker for the scheduling tests: two slots, and it counts what it ran and its own peak."""

from __future__ import annotations

import asyncio
import os

from worker_abstraction import BaseWorker, capability


class SlotWorker(BaseWorker):
    max_concurrent_tasks = 2

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.running = 0
        self.peak = 0
        self.done = 0

    @capability
    async def noop(self) -> None:
        """Do nothing, but count it and how many ran at once."""
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.001)
        self.running -= 1
        self.done += 1

    @capability
    async def hold(self, label: str = "", until_file: str = "", seconds: float = 30) -> str:
        """Keep a slot busy until `until_file` exists (the test's cross-process gate), at most `seconds`."""
        deadline = asyncio.get_running_loop().time() + seconds
        # A file is the simplest gate another process can open; checking it is cheap enough here.
        while until_file and not os.path.exists(until_file) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.01)
        return label

    @capability
    async def stats(self) -> dict[str, int]:
        """What this worker saw, by its own count."""
        return {"done": self.done, "peak": self.peak, "received": self.tasks_received}
