"""The SQLite task store alone, on the disk the daemon's store uses: what its commits and checkpoints cost there.

A sequential task through the durable daemon (scenario 6) waits for one group commit: its acceptance, with
the previous task's dispatched and finished facts. Commits never wait for the disk (WAL, synchronous=NORMAL:
they write to the page cache), but each is about fifteen system calls (a write per page and per frame
header, the log's locks); checkpoints do sync the disk, on a thread of their own, and commits wait for their
last pass. Where the durable daemon's latency is far above the in-memory one's, these say how much of it the
store explains on that machine, without the network in the way:

- `fsync_4k_p50_us`: a 4 KiB write then fdatasync (what a checkpoint's syncs start from);
- `commit_p50_us` / `commit_p99_us`, `tasks_per_s`: the sequential daemon's pattern of writes, one task after
  another, each acceptance committed (with the previous task's facts written behind);
- `checkpoints`, `checkpoint_p50_ms`, `held_p50_ms` / `held_max_ms`: how many checkpoints that made, how long
  they took and how long commits waited for each; `commits_waiting_share`: the share of commits that waited.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.measure import percentile
from worker_abstraction.stores.sqlite import SqliteTaskStore

_TASK = os.urandom(200)  # about a serialized no-op task
_RECORD = os.urandom(300)  # about its finished record
_FSYNCS = 50


async def probe(directory: Path, tasks: int) -> dict[str, Any]:
    """Run the probe in `directory` (a file of its own, removed after); the figures above."""
    path = directory / "store-probe.db"
    # First, on a quiet disk: right after the store closes (its log deleted), syncs took 4 ms here, not 0.2.
    fsyncs = await asyncio.to_thread(_fsync_seconds, directory / "store-probe.fsync", _FSYNCS)
    commits: list[float] = []
    checkpoints: list[tuple[float, float]] = []
    store = await SqliteTaskStore(
        path, on_commit=commits.append, on_checkpoint=lambda took, held: checkpoints.append((took, held))
    ).open()
    behind: list[asyncio.Future[None]] = []
    began = time.perf_counter()
    try:
        for number in range(tasks):
            task_id = f"probe-{number:06d}"
            await store.accepted(task_id, _TASK, "{}", capability="noop", reserved=3)
            # Written behind, as the daemon writes them: they share the next acceptance's commit.
            behind.append(store.dispatched(task_id, "worker", "127.0.0.1:1", 1))
            behind.append(store.finished(task_id, _RECORD, 3))
        elapsed = time.perf_counter() - began
        await asyncio.gather(*behind)
    finally:
        await store.close()
        await asyncio.to_thread(_remove, directory, "store-probe.db*")
    held = [seconds for _, seconds in checkpoints]
    return {
        "tasks": tasks,
        "tasks_per_s": tasks / elapsed,
        "fsync_4k_p50_us": percentile(fsyncs, 50) * 1e6,
        "commit_p50_us": percentile(commits, 50) * 1e6,
        "commit_p99_us": percentile(commits, 99) * 1e6,
        "commits": len(commits),
        "checkpoints": len(checkpoints),
        "checkpoint_p50_ms": statistics.median(took for took, _ in checkpoints) * 1e3 if checkpoints else None,
        "held_p50_ms": statistics.median(held) * 1e3 if held else None,
        "held_max_ms": max(held) * 1e3 if held else None,
        # One task after another, one acceptance at a time waits for each checkpoint that held commits.
        "commits_waiting_share": sum(1 for seconds in held if seconds) / len(commits) if commits else None,
    }


def _remove(directory: Path, pattern: str) -> None:
    for leftover in directory.glob(pattern):
        leftover.unlink()


def _fsync_seconds(path: Path, count: int) -> list[float]:
    page = os.urandom(4096)
    seconds: list[float] = []
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for _ in range(count):
            os.pwrite(descriptor, page, 0)
            start = time.perf_counter()
            os.fdatasync(descriptor)
            seconds.append(time.perf_counter() - start)
    finally:
        os.close(descriptor)
        path.unlink()
    return seconds
