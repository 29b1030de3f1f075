"""The orchestrator's sense of time: one injectable clock for deadlines, back-offs, aging and probes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time and timers. Tests inject their own to drive deadlines without waiting."""

    def now(self) -> float:
        """Monotonic seconds (only differences mean anything)."""
        ...

    def call_later(self, delay_seconds: float, callback: Callable[[], None]) -> Timer:
        """Call `callback` once, `delay_seconds` from now, on the event loop."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's clock (the default)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay_seconds: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay_seconds), callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
