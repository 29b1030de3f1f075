"""The SQLite task store: writes committed in order and kept, reads that see them, a log that stays bounded."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from worker_abstraction.stores.sqlite import SqliteTaskStore


async def _accept(store: SqliteTaskStore, number: int) -> None:
    await store.accepted(f"task-{number:05d}", b"spec" * 50, "{}", capability="noop", reserved=3)


async def test_writes_made_together_are_all_kept_and_read_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    store = await SqliteTaskStore(path).open()
    await asyncio.gather(*(_accept(store, n) for n in range(300)))
    await asyncio.gather(*(store.finished(f"task-{n:05d}", b"record", 3) for n in range(0, 300, 2)))
    unfinished = await store.unfinished()
    assert [t.task_id for t in unfinished] == [f"task-{n:05d}" for n in range(1, 300, 2)]
    await store.close()

    reopened = await SqliteTaskStore(path).open()
    try:
        assert len(await reopened.unfinished()) == 150
        assert await reopened.finished_record("task-00000") == b"record"
        assert await reopened.finished_record("task-00001") is None
    finally:
        await reopened.close()


# Without checkpoints the log holds every commit's pages: 70 MB one by one, 5 MB fifty at a time.
@pytest.mark.parametrize(("concurrent", "bound"), [(1, 4 * 2**20), (50, 2**20)])
async def test_the_write_ahead_log_stays_bounded_under_a_load_that_never_pauses(
    tmp_path: Path, concurrent: int, bound: int
) -> None:
    path = tmp_path / "tasks.db"
    store = await SqliteTaskStore(path, checkpoint_every=100).open()
    try:
        for start in range(0, 4000, concurrent):
            await asyncio.gather(*(_accept(store, n) for n in range(start, start + concurrent)))
        wal = os.path.getsize(f"{path}-wal")  # noqa: ASYNC240  (one stat, nothing else runs)
        assert wal < bound, f"the log grew to {wal:,} bytes"
        assert len(await store.unfinished()) == 4000
    finally:
        await store.close()
