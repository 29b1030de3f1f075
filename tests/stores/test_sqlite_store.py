"""The SQLite task store: writes committed in order and kept, reads that see them, a log that stays bounded."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
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


class LogSizes:
    """The write-ahead log file's size after each commit (the store's `on_commit` is called as each one ends)."""

    def __init__(self, path: Path) -> None:
        self.log = f"{path}-wal"
        self.sizes: list[int] = []
        self.commits = 0

    def __call__(self, seconds: float) -> None:
        self.commits += 1
        self.sizes.append(os.path.getsize(self.log))

    def growth(self) -> int:
        """The most one commit added to the log."""
        return max(after - before for before, after in itertools.pairwise([0, *self.sizes]))


# Without checkpoints the log holds every commit's pages: 70 MB one by one, 5 MB fifty at a time.
@pytest.mark.parametrize("concurrent", [1, 50])
async def test_the_write_ahead_log_stays_bounded_under_a_load_that_never_pauses(
    tmp_path: Path, concurrent: int
) -> None:
    path = tmp_path / "tasks.db"
    sizes = LogSizes(path)
    limit = 2**20
    store = await SqliteTaskStore(path, checkpoint_bytes=limit // 4, log_limit_bytes=limit, on_commit=sizes).open()
    try:
        for start in range(0, 4000, concurrent):
            await asyncio.gather(*(_accept(store, n) for n in range(start, start + concurrent)))
        assert max(sizes.sizes) <= limit + sizes.growth(), f"the log grew to {max(sizes.sizes):,} bytes"
        # It started over many times (each time cut back: the file shrank), with every commit kept. (Not "its
        # largest size came before the last commit": the last commit may well be the one that reaches it.)
        restarts = sum(after < before for before, after in itertools.pairwise(sizes.sizes))
        assert restarts >= 2, f"the log started over {restarts} times: {sizes.sizes}"
        assert len(await store.unfinished()) == 4000
    finally:
        await store.close()


_MIB = 2**20


async def _large_task(store: SqliteTaskStore, number: int) -> None:
    """Every fact of one task whose arguments and record are 1 MiB each (each update rewrites its whole row)."""
    task_id = f"task-{number:05d}"
    await store.accepted(task_id, os.urandom(_MIB), "{}", capability="noop", reserved=3)
    await store.reserve(task_id, 6)
    await store.dispatched(task_id, "worker-a", "127.0.0.1:1", 1)
    await store.finished(task_id, os.urandom(_MIB), 3)


async def test_large_facts_checkpoint_the_log_by_its_size_and_it_stays_under_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    sizes = LogSizes(path)
    limit = 8 * _MIB
    store = await SqliteTaskStore(
        path, checkpoint_bytes=2 * _MIB, log_limit_bytes=limit, behind_seconds=0, on_commit=sizes
    ).open()
    try:
        async with asyncio.timeout(30):
            for start in range(0, 48, 3):  # three tasks at a time, never a pause
                await asyncio.gather(*(_large_task(store, n) for n in range(start, start + 3)))
        # The most one commit writes here: three finished rows, each a 1 MiB argument and a 1 MiB record.
        assert sizes.growth() < 7 * _MIB
        assert max(sizes.sizes) <= limit + sizes.growth(), f"the log grew to {max(sizes.sizes):,} bytes"
        assert await store.unfinished() == []
    finally:
        await store.close()
    reopened = await SqliteTaskStore(path).open()
    try:
        assert all([await reopened.finished_record(f"task-{n:05d}") for n in range(48)])
    finally:
        await reopened.close()


async def test_a_checkpoint_starts_once_the_log_passes_its_size_and_the_next_commit_starts_the_log_over(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.db"
    sizes = LogSizes(path)
    checkpoints: list[tuple[float, float]] = []
    ended = asyncio.Event()

    def checkpointed(took: float, held: float) -> None:
        checkpoints.append((took, held))
        ended.set()

    store = await SqliteTaskStore(path, checkpoint_bytes=_MIB, on_commit=sizes, on_checkpoint=checkpointed).open()
    try:
        number = 0
        while not sizes.sizes or sizes.sizes[-1] <= _MIB:
            await store.accepted(f"task-{number:05d}", os.urandom(64 * 2**10), "{}", capability="noop")
            assert checkpoints == [] or sizes.sizes[-1] > _MIB  # none before the log passes its size
            number += 1
        async with asyncio.timeout(5):
            await ended.wait()
        ((took, held),) = checkpoints
        assert took >= 0 and held == 0  # nothing was committed meanwhile: no commit waited for it
        await _accept(store, number)
        assert sizes.sizes[-1] <= _MIB < sizes.sizes[-2]  # started over, and cut back to its size
        assert len(await store.unfinished()) == number + 1
    finally:
        await store.close()


async def test_updating_a_task_with_large_arguments_writes_them_to_the_log_once(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    sizes = LogSizes(path)
    store = await SqliteTaskStore(path, behind_seconds=0, on_commit=sizes).open()
    try:
        await store.accepted("task-1", os.urandom(4 * _MIB), "{}", capability="noop", reserved=3)
        await store.dispatched("task-1", "worker-a", "127.0.0.1:1", 1)  # rewrites the row, arguments and all
        accepted, dispatched = sizes.sizes[-2], sizes.sizes[-1]
        # Once: the old copy's pages are not overwritten with zeros as well.
        assert dispatched - accepted < 5 * _MIB, f"the update wrote {dispatched - accepted:,} bytes to the log"
    finally:
        await store.close()


async def test_writes_queued_one_after_another_land_in_that_order(tmp_path: Path) -> None:
    store = await SqliteTaskStore(tmp_path / "tasks.db").open()
    try:
        writes = [
            store.accepted("task-1", b"spec", "{}", capability="noop", reserved=3),
            store.dispatched("task-1", "worker-a", "127.0.0.1:1", 1),
            store.requeued("task-1", 1, 1),
            store.dispatched("task-1", "worker-b", "127.0.0.1:2", 2),
        ]  # queued when called: none of them awaited yet
        await asyncio.gather(*writes)
        (task,) = await store.unfinished()
        assert (task.worker_id, task.attempt, task.failures, task.reserved) == ("worker-b", 2, 1, 3)
    finally:
        await store.close()


async def test_facts_written_behind_wait_to_share_the_next_acceptances_commit(tmp_path: Path) -> None:
    commits: list[float] = []
    store = await SqliteTaskStore(tmp_path / "tasks.db", behind_seconds=60, on_commit=commits.append).open()
    try:
        await _accept(store, 1)
        assert len(commits) == 1
        behind = [store.dispatched("task-00001", "worker-a", "127.0.0.1:1", 1), store.finished("task-00001", b"r", 3)]
        for _ in range(10):  # turns of the loop go by: they wait
            await asyncio.sleep(0)
        assert len(commits) == 1 and not any(fact.done() for fact in behind)
        await _accept(store, 2)  # and go in its transaction
        assert len(commits) == 2 and all(fact.done() for fact in behind)
        assert await store.finished_record("task-00001") == b"r"
    finally:
        await store.close()


async def test_facts_written_behind_commit_on_their_own_when_no_acceptance_comes(tmp_path: Path) -> None:
    commits: list[float] = []
    store = await SqliteTaskStore(tmp_path / "tasks.db", behind_seconds=0.01, on_commit=commits.append).open()
    try:
        await _accept(store, 1)
        alone = store.dispatched("task-00001", "worker-a", "127.0.0.1:1", 1)
        async with asyncio.timeout(5):
            await alone
        assert len(commits) == 2
        (task,) = await store.unfinished()
        assert (task.task_id, task.worker_id) == ("task-00001", "worker-a")
    finally:
        await store.close()


@pytest.mark.parametrize("path", [":memory:", "file:tasks?mode=memory"])
async def test_a_store_kept_in_memory_reads_what_it_wrote(path: str) -> None:
    store = await SqliteTaskStore(path).open()
    try:
        await asyncio.gather(*(_accept(store, n) for n in range(3)))
        await store.finished("task-00001", b"record", 3)
        assert [t.task_id for t in await store.unfinished()] == ["task-00000", "task-00002"]
        assert await store.finished_record("task-00001") == b"record"
        assert await store.dead_letters() == []
    finally:
        await store.close()


async def test_a_task_dispatched_and_finished_in_one_commit_is_kept_finished(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    store = await SqliteTaskStore(path, behind_seconds=60).open()
    try:
        await asyncio.gather(_accept(store, 1), _accept(store, 2))
        facts = [
            store.dispatched("task-00001", "worker-a", "127.0.0.1:1", 1),
            store.dispatched("task-00002", "worker-b", "127.0.0.1:2", 1),
            store.finished("task-00001", b"record", 3),
        ]
        await _accept(store, 3)  # commits them all
        assert all(fact.done() and fact.exception() is None for fact in facts)
    finally:
        await store.close()
    reopened = await SqliteTaskStore(path).open()
    try:
        assert await reopened.finished_record("task-00001") == b"record"
        left = {task.task_id: task for task in await reopened.unfinished()}
        assert sorted(left) == ["task-00002", "task-00003"]
        assert (left["task-00002"].worker_id, left["task-00002"].attempt) == ("worker-b", 1)
    finally:
        await reopened.close()


async def test_every_write_to_a_closed_store_fails_awaited_or_written_behind(tmp_path: Path) -> None:
    store = await SqliteTaskStore(tmp_path / "tasks.db").open()
    await store.close()
    behind = store.dispatched("task-00001", "worker-a", "127.0.0.1:1", 1)
    with pytest.raises(Exception, match="closed"):
        await store.accepted("task-00001", b"spec", "{}")
    with pytest.raises(Exception, match="closed"):
        async with asyncio.timeout(5):
            await behind


async def test_flush_commits_an_acceptance_at_once_and_tells_its_then_as_the_commit_ends(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    store = await SqliteTaskStore(path).open()
    try:
        told: list[BaseException | None] = []
        written = store.accepted("task-1", b"spec", "{}", capability="noop", then=told.append)
        assert told == []  # queued, not committed yet
        store.flush()
        assert told == [None]  # committed and told before the loop took another turn
        with sqlite3.connect(path) as other:  # on disk: another connection sees it
            assert other.execute("SELECT task_id FROM tasks").fetchall() == [("task-1",)]
        await written
    finally:
        await store.close()


async def test_without_flush_an_acceptance_is_committed_on_the_next_turn_and_its_then_told(tmp_path: Path) -> None:
    store = await SqliteTaskStore(tmp_path / "tasks.db").open()
    try:
        told: list[BaseException | None] = []
        await store.accepted("task-1", b"spec", "{}", then=told.append)
        assert told == [None]
        store.flush()  # nothing waits: nothing to do
        assert [t.task_id for t in await store.unfinished()] == ["task-1"]
    finally:
        await store.close()


async def test_a_write_that_cannot_be_kept_tells_its_then_why(tmp_path: Path) -> None:
    store = await SqliteTaskStore(tmp_path / "tasks.db").open()
    await store.close()
    told: list[BaseException | None] = []
    written = store.accepted("task-1", b"spec", "{}", then=told.append)
    store.flush()
    assert len(told) == 1 and isinstance(told[0], sqlite3.ProgrammingError)
    with pytest.raises(sqlite3.ProgrammingError):
        await written


async def test_a_then_that_raises_is_logged_and_the_others_are_still_told(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await SqliteTaskStore(tmp_path / "tasks.db").open()
    try:
        told: list[str] = []

        def broken(problem: BaseException | None) -> None:
            raise RuntimeError("a waiter's bug")

        first = store.accepted("task-1", b"spec", "{}", then=broken)
        second = store.accepted("task-2", b"spec", "{}", then=lambda problem: told.append(f"task-2 {problem}"))
        store.flush()
        assert told == ["task-2 None"]
        assert "a task store write's callback failed" in caplog.text
        await asyncio.gather(first, second)  # both kept
        assert sorted(t.task_id for t in await store.unfinished()) == ["task-1", "task-2"]
    finally:
        await store.close()
