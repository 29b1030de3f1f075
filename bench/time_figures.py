"""Scenario 9's arithmetic: how late delayed tasks started, which latency samples fell inside a sweep, a CPU
window's share of a core, and how a store's size moved from round to round.

Kept apart from the processes that measure them, so that `tests/bench/test_time_figures.py` checks them on
fixed numbers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.measure import percentile


@dataclass(frozen=True)
class Lateness:
    """How late a round of delayed tasks started (milliseconds; negative: early), over `count` tasks."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    min_ms: float
    early: int  # tasks dispatched before their not_before


def lateness_ms(not_before: datetime, started_at: datetime) -> float:
    """How long after its `not_before` a task's first attempt started (ms; negative: before it)."""
    return (started_at - not_before).total_seconds() * 1e3


def lateness(samples_ms: Sequence[float]) -> Lateness:
    """The round's figures from each task's lateness.

    Raises:
        ValueError: no samples.
    """
    return Lateness(
        count=len(samples_ms),
        p50_ms=percentile(samples_ms, 50),
        p99_ms=percentile(samples_ms, 99),
        max_ms=max(samples_ms),
        min_ms=min(samples_ms),
        early=sum(1 for late in samples_ms if late < 0),
    )


@dataclass(frozen=True)
class Split:
    """Sequential latency samples (seconds) split by a sweep's span: those that ended before it began, and
    those that overlapped it (any part of them inside it); those after it are left out."""

    before: list[float]
    during: list[float]


def split_by_span(samples: Sequence[tuple[float, float]], began: float, ended: float) -> Split:
    """`samples` as (start, seconds) on one clock; the span [began, ended] on the same clock."""
    before = [seconds for start, seconds in samples if start + seconds <= began]
    during = [seconds for start, seconds in samples if start < ended and start + seconds > began]
    return Split(before, during)


def cpu_share(cpu_seconds: float, wall_seconds: float) -> float:
    """CPU seconds per second of wall time (a share of one core).

    Raises:
        ValueError: no wall time.
    """
    if wall_seconds <= 0:
        raise ValueError(f"a window of {wall_seconds} s")
    return cpu_seconds / wall_seconds


@dataclass(frozen=True)
class StoreSize:
    """A SQLite store's size: its database (pages × page size, what the file holds once the log is folded
    in), the pages of it on the free list (kept for reuse), and the two files as they are on disk now."""

    database_bytes: int
    free_bytes: int
    file_bytes: int
    log_bytes: int


def store_size(path: Path) -> StoreSize:
    """The size of the store at `path`, read beside the daemon that writes it (read-only: a WAL reader)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None) as db:
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        (free,) = db.execute("PRAGMA freelist_count").fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
    log = Path(f"{path}-wal")
    return StoreSize(
        database_bytes=pages * page_size,
        free_bytes=free * page_size,
        file_bytes=path.stat().st_size,
        log_bytes=log.stat().st_size if log.exists() else 0,
    )


def growth_after_first(sizes: Sequence[float]) -> float:
    """How much the size grew from the end of the first round to the end of the last (negative: shrank).

    Raises:
        ValueError: fewer than two rounds.
    """
    if len(sizes) < 2:
        raise ValueError(f"growth needs two rounds, got {list(sizes)}")
    return sizes[-1] - sizes[0]
