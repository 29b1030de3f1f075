"""The orchestrator's sense of time: one injectable clock for deadlines, back-offs, aging and probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time and timers. Tests inject their own to drive deadlines without waiting."""

    def now(self) -> float:
        """Monotonic seconds (only differences mean anything)."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (what a delayed task's `not_before` is compared with)."""
        ...

    def call_later(self, delay_seconds: float, callback: Callable[[], None]) -> Timer:
        """Call `callback` once, `delay_seconds` from now, on the event loop."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's clock (the default)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return time.time()

    def call_later(self, delay_seconds: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay_seconds), callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class NamedTimers:
    """Timers on a clock by name, one of each name at a time (a task's queue wait, deadline, back-off...)."""

    __slots__ = ("_clock", "_timers")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # Each timer with when it is due (the clock's time): made with the first timer, a queued task has none.
        self._timers: dict[str, tuple[Timer, float]] | None = None

    def start(self, name: str, delay_seconds: float, callback: Callable[[], None]) -> None:
        """Call `callback` after `delay_seconds`, instead of what a timer of this name would have called."""
        if self._timers is None:
            self._timers = {}
        self.stop(name)
        self._timers[name] = (self._clock.call_later(delay_seconds, callback), self._clock.now() + delay_seconds)

    def stop(self, name: str) -> float | None:
        """Stop the timer of this name; returns the seconds it had left (None: there was none)."""
        found = self._timers.pop(name, None) if self._timers is not None else None
        if found is None:
            return None
        timer, due = found
        timer.cancel()
        return max(0.0, due - self._clock.now())

    def stop_all(self) -> None:
        if self._timers is not None:
            for timer, _ in self._timers.values():
                timer.cancel()
            self._timers = None
