"""The event loop every bench process uses: uvloop when installed, like the `wa` processes, unless WA_LOOP=asyncio."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory() -> LoopFactory | None:
    """uvloop's loop factory, or None for asyncio's default loop (WA_LOOP=asyncio, or uvloop missing)."""
    if os.environ.get("WA_LOOP", "auto") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on the chosen loop (Python 3.11's `asyncio.run` takes no loop factory)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
