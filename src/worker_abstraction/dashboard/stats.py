"""Throughput and latency over the last minutes: a ring of one-second buckets of finished tasks."""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field

from worker_abstraction.types import TaskStatus

SAMPLES_PER_SECOND = 200  # latencies kept per bucket (a uniform sample past that): percentiles stay cheap


@dataclass(slots=True)
class _Second:
    second: int
    completed: int = 0
    failed: int = 0  # FAILED or CANCELED
    seen: int = 0  # latencies offered to the sample
    latencies: list[float] = field(default_factory=list)


class Throughput:
    """Tasks finished per second, and their latency (acceptance to end), over a window of seconds.

    Memory is bounded by `window_seconds * SAMPLES_PER_SECOND` floats whatever the rate.

    Args:
        window_seconds: how many of the latest seconds are kept.
    """

    def __init__(self, window_seconds: int = 300) -> None:
        self.window_seconds = window_seconds
        self._ring: deque[_Second] = deque(maxlen=window_seconds)
        self._random = random.Random(0)

    def record(self, now: float, status: TaskStatus, latency_seconds: float) -> None:
        """A task ended at `now` (seconds since the epoch) with `status`, `latency_seconds` after it was accepted."""
        bucket = self._bucket(int(now))
        if status is TaskStatus.COMPLETED:
            bucket.completed += 1
        else:
            bucket.failed += 1
        bucket.seen += 1
        if len(bucket.latencies) < SAMPLES_PER_SECOND:
            bucket.latencies.append(latency_seconds)
        else:  # reservoir sampling: every latency of the second equally likely to be kept
            slot = self._random.randrange(bucket.seen)
            if slot < SAMPLES_PER_SECOND:
                bucket.latencies[slot] = latency_seconds

    def series(self, now: float, seconds: int | None = None) -> dict[str, list[float | int | None]]:
        """The last `seconds` whole seconds before `now` (default: the window), oldest first, one entry per
        second, empty seconds included: `t`, `completed`, `failed`, `p50`, `p95` (latency, None when none)."""
        span = min(seconds or self.window_seconds, self.window_seconds)
        end = int(now)  # the second under way is left out: it is not over
        by_second = {b.second: b for b in self._ring}
        out: dict[str, list[float | int | None]] = {"t": [], "completed": [], "failed": [], "p50": [], "p95": []}
        for second in range(end - span, end):
            bucket = by_second.get(second)
            out["t"].append(second)
            out["completed"].append(bucket.completed if bucket else 0)
            out["failed"].append(bucket.failed if bucket else 0)
            ordered = sorted(bucket.latencies) if bucket else []
            out["p50"].append(_percentile(ordered, 0.50))
            out["p95"].append(_percentile(ordered, 0.95))
        return out

    def _bucket(self, second: int) -> _Second:
        ring = self._ring
        if ring and ring[-1].second == second:
            return ring[-1]
        if ring and ring[-1].second > second:  # the wall clock stepped back: count it in the latest second
            return ring[-1]
        bucket = _Second(second)
        ring.append(bucket)
        return bucket


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
