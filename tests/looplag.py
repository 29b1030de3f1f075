"""A loop-lag probe: how late the event loop ran a callback it was asked to run every millisecond.

Blocking I/O (or a long computation) on the loop shows as lag: every other caller froze for that long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

TICK_SECONDS = 0.001


@dataclass
class Lag:
    worst_seconds: float = 0.0
    ticks: int = 0


@asynccontextmanager
async def loop_lag() -> AsyncIterator[Lag]:
    """Measure the worst lateness of a 1 ms timer on the running loop while the block runs."""
    lag = Lag()
    loop = asyncio.get_running_loop()
    due = time.perf_counter() + TICK_SECONDS

    def tick() -> None:
        nonlocal due, timer
        now = time.perf_counter()
        lag.worst_seconds = max(lag.worst_seconds, now - due)
        lag.ticks += 1
        due = now + TICK_SECONDS
        timer = loop.call_later(TICK_SECONDS, tick)

    timer = loop.call_later(TICK_SECONDS, tick)
    try:
        yield lag
    finally:
        timer.cancel()
        # A block that never gave the loop back still counts: the tick due then is late by now.
        lag.worst_seconds = max(lag.worst_seconds, time.perf_counter() - due)
