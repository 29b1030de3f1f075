"""Memory that large payloads used, handed back once they are garbage.

CPython's cyclic collector counts objects, not bytes: a finished task whose objects form a cycle (a run and
its handle, a future and its callbacks) and hold a megabyte of arguments and output weighs no more on it than
one holding a byte. With `collector.tune()`'s thresholds a daemon handling large tasks collected its oldest
generation so rarely that 4,000 tasks of 100 KB left 380 MiB of unreachable cycles behind (517 MiB resident
for 134 MiB in use), about 100 MiB more per 1,000 tasks. And glibc's malloc keeps what is freed for reuse,
scattered in every thread's arena, returning it to the system only from the top of a heap.

So `handled(nbytes)` counts the bytes of arguments and outputs a server handled; once TRIM_EVERY_BYTES have
passed (and at most once per TRIM_MIN_SECONDS) it runs a full collection and `malloc_trim(0)`, which returns
the free pages of every arena. Between two of them at most TRIM_EVERY_BYTES of payloads (and what arrives
within TRIM_MIN_SECONDS) can wait as garbage. Where the C library has no malloc_trim (musl, macOS, Windows)
only the collection runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

TRIM_EVERY_BYTES = 64 * 2**20
TRIM_MIN_SECONDS = 1.0


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_trim = _malloc_trim()
_pending = 0  # payload bytes handled since the last trim
_last = -TRIM_MIN_SECONDS


def handled(nbytes: int) -> None:
    """Count `nbytes` of arguments or output this process handled; trim when enough have passed."""
    global _pending, _last
    _pending += nbytes
    if _pending < TRIM_EVERY_BYTES:
        return
    now = time.monotonic()
    if now - _last < TRIM_MIN_SECONDS:
        return
    _pending, _last = 0, now
    found = gc.collect()
    if _trim is not None:
        _trim(0)
    logger.debug(
        "%d MiB of payloads handled: %d unreachable objects collected, freed memory returned (%.1f ms)",
        TRIM_EVERY_BYTES // 2**20,
        found,
        (time.monotonic() - now) * 1000,
    )
