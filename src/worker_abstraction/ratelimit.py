"""A token bucket: the rate limit each principal's calls and session submissions count against."""

from __future__ import annotations

import time

DEFAULT_CALLS_PER_SECOND = 2000.0  # a principal's calls and session submissions, unless its entry says otherwise
BURST_SECONDS = 2.0  # a bucket holds this many seconds of calls


class TokenBucket:
    """A token bucket: `rate` calls a second, up to `rate * BURST_SECONDS` at once."""

    __slots__ = ("level", "rate", "stamp")

    def __init__(self, rate: float) -> None:
        self.rate, self.level, self.stamp = rate, rate * BURST_SECONDS, time.monotonic()

    def take(self) -> float:
        """0 when the call may go ahead (it is counted), else the seconds until it may (it is not)."""
        self._refill()
        if self.level >= 1:
            self.level -= 1
            return 0.0
        return (1 - self.level) / self.rate

    def reserve(self) -> float:
        """Count a request that will wait its turn: the seconds until its turn (0: now)."""
        self._refill()
        self.level -= 1
        return max(0.0, -self.level / self.rate)

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.rate * BURST_SECONDS, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
