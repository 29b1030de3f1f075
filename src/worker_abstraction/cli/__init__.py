"""The `wa` command line: `wa registry`, `wa worker`, `wa submit`, `wa workers` (see `wa --help`).

This package is the only place that reads `WA_*` environment variables and installs signal handlers;
the helpers both subcommands share live here, the parser in `main.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable
from typing import Any

_log = logging.getLogger(__name__)

DEFAULT_REGISTRY = "127.0.0.1:50051"


class UsageError(Exception):
    """A command line that parsed but cannot be acted on (e.g. a worker class that does not import)."""


def env(name: str, fallback: str | None) -> str | None:
    """The default for a flag: environment variable `name` if set, else `fallback`."""
    return os.environ.get(name, fallback)


async def run_until_signal(done: Awaitable[None]) -> signal.Signals | None:
    """Wait for SIGINT/SIGTERM or for `done` to finish, whichever comes first.

    The handlers are removed before returning, so a second signal during a graceful stop interrupts it.

    Returns:
        The signal received, or None when `done` finished first.
    """
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal(sig: signal.Signals) -> None:
        if not received.done():
            received.set_result(sig)

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    finished = asyncio.ensure_future(done)
    waiters: set[asyncio.Future[Any]] = {received, finished}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        finished.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await finished
    if received.done():
        _log.info("received %s, stopping (send it again to force)", received.result().name)
        return received.result()
    return None
