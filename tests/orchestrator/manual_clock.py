"""A clock the test moves by hand: deadlines, back-offs and probes fire when the test says so."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class _Timer:
    when: float
    order: int
    callback: Callable[[], None] = field(compare=False)
    canceled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.canceled = True


class ManualClock:
    def __init__(self) -> None:
        self.time = 1000.0
        # Its wall clock starts at the real time (tasks are stamped with it when accepted) and moves with it.
        self._epoch = time.time() - self.time
        self._timers: list[_Timer] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    def wall(self) -> float:
        return self._epoch + self.time

    def call_later(self, delay_seconds: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self.time + max(0.0, delay_seconds), next(self._order), callback)
        heapq.heappush(self._timers, timer)
        return timer

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Move time on, firing every timer that comes due, in order."""
        until = self.time + seconds
        while self._timers and self._timers[0].when <= until:
            timer = heapq.heappop(self._timers)
            self.time = max(self.time, timer.when)
            if not timer.canceled:
                timer.callback()
        self.time = until
