"""Whether a shared store answers, as one process finds it; and the pauses between its tries while it does not.

A daemon or a registry on NATS keeps background loops on its store (taking work, moving exhausted work,
probing, sweeping). When a NATS node dies the store stops answering for a few seconds (no leader yet, a
connection moving to another server); the loops must outlive that, try again without hammering the
cluster, and say so once, not once per try:

- `StoreAvailability` is what the process knows: loops report each failure (`failed`) and a probe each
  answer (`answered`). The first failure of an outage is logged once at WARNING, the end of it once at INFO
  with how long it lasted; listeners hear each change (the health service: NOT_SERVING meanwhile), and the
  failures are counted (`wa_store_errors_total`, `wa_store_available` in the metrics).
- `Backoff` is the pause between tries: doubling up to a cap, each drawn between half and all of it, so
  that replicas that failed together do not all come back at the same instant.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

_RELOG_SECONDS = 60.0  # a loop that keeps failing unexpectedly logs its traceback this often at most


class StoreAvailability:
    """Whether a store answers, as the calls made to it find it.

    Args:
        what: the store, as log lines name it ("NATS (the shared tasks)").
        since: when (monotonic seconds) it is known to have answered from; None: it always has (a store that
            cannot fail, or one reached before anything was decided on it).
    """

    def __init__(self, what: str, *, since: float | None = None) -> None:
        self.what = what
        self.available = True
        self.errors = 0  # failures reported, over the process's life
        self._since = -math.inf if since is None else since  # when it last became available
        self._lost_at = 0.0
        self._listeners: list[Callable[[bool], None]] = []

    def listen(self, listener: Callable[[bool], None]) -> None:
        """Call `listener(available)` on each change (on the loop that reported it)."""
        self._listeners.append(listener)

    def failed(self, error: BaseException) -> None:
        """A call found the store not answering: counted; the first one of an outage is logged."""
        self.errors += 1
        if not self.available:
            logger.debug("%s still does not answer: %s", self.what, error)
            return
        self.available = False
        self._lost_at = time.monotonic()
        logger.warning("%s does not answer: %s; trying again until it does", self.what, error)
        self._tell(False)

    def answered(self) -> None:
        """A call found the store answering (the end of an outage, if there was one)."""
        if self.available:
            return
        self.available = True
        self._since = time.monotonic()
        logger.info("%s answers again, after %.1fs", self.what, self._since - self._lost_at)
        self._tell(True)

    def available_for(self) -> float:
        """Seconds the store has answered without an outage (0 during one; infinite if it never had one)."""
        return time.monotonic() - self._since if self.available else 0.0

    def _tell(self, available: bool) -> None:
        for listener in self._listeners:
            listener(available)


class Backoff:
    """Pauses between tries of something that fails: `first`, then doubling up to `cap`, each jittered.

    Args:
        first: the first pause (seconds), before jitter.
        cap: the longest pause, before jitter.
    """

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = max(first, cap)
        self._next = first

    def pause(self) -> float:
        """The next pause: between half and all of the current step; the step doubles, up to `cap`."""
        step = self._next
        self._next = min(self.cap, step * 2)
        return step * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        """It worked: the next failure starts from `first` again."""
        self._next = self.first


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was asked to stop.

    For loops around calls that may swallow a cancel (nats-py can turn one into a TimeoutError): without
    this check such a loop would go on for good, and whoever awaits it after cancelling it would hang.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def kept_running(
    name: str, loop: Callable[[], Awaitable[None]], log: logging.Logger, *, first: float = 0.1, cap: float = 5.0
) -> None:
    """Run a background loop for good: one that raises (an error nobody foresaw) is logged on `log`, with
    its traceback at most once a minute, and started again after a pause (jittered, from `first` to `cap`)."""
    backoff = Backoff(first, cap)
    logged_at = -_RELOG_SECONDS
    while True:
        raise_if_cancelled()
        try:
            await loop()
        except Exception:
            now = asyncio.get_running_loop().time()
            if now - logged_at >= _RELOG_SECONDS:
                logged_at = now
                log.exception("%s stopped; starting it again", name)
            else:
                log.debug("%s stopped again; starting it again", name, exc_info=True)
            await asyncio.sleep(backoff.pause())
