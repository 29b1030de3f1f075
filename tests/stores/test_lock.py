"""One task store, one holder: the sidecar lock that keeps a second daemon off a store in use."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from worker_abstraction.errors import StoreInUseError
from worker_abstraction.stores.lock import StoreLock
from worker_abstraction.stores.sqlite import SqliteTaskStore


async def test_a_second_store_on_the_same_file_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    first = await SqliteTaskStore(path).open()
    second = SqliteTaskStore(path)
    try:
        with pytest.raises(StoreInUseError) as refused:
            await second.open()
        assert refused.value.path == str(path)
        assert refused.value.holder.startswith(f"PID {os.getpid()} on host ")
        await first.accepted("t-1", b"task", "{}")  # the holder is undisturbed
        assert [t.task_id for t in await first.unfinished()] == ["t-1"]
    finally:
        await first.close()
    await second.open()  # the lock went with close()
    try:
        assert [t.task_id for t in await second.unfinished()] == ["t-1"]
    finally:
        await second.close()


async def test_a_refused_store_does_not_touch_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    with StoreLock(path), pytest.raises(StoreInUseError):
        await SqliteTaskStore(path).open()
    assert not path.exists()


def test_the_lock_file_names_its_holder_and_the_lock_is_free_again_after_release(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    with StoreLock(path) as held:
        assert held.held and held.lock_path == f"{path.resolve()}.lock"
        holder = f"PID {os.getpid()} on host {socket.gethostname()}"
        with pytest.raises(StoreInUseError) as refused:
            StoreLock(path).acquire()
        assert refused.value.holder == holder
        assert Path(held.lock_path).read_text() == f"{holder}\n"  # the refused one left it as it was
    assert not held.held
    again = StoreLock(path)
    again.acquire()
    assert again.held
    again.release()
    again.release()  # a second release is harmless


def test_two_spellings_of_one_store_meet_on_one_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    with StoreLock(tmp_path / "real" / "tasks.db"):
        for spelling in ["alias/tasks.db", "real/../real/tasks.db", f"file:{tmp_path}/alias/tasks.db?mode=rwc"]:
            with pytest.raises(StoreInUseError):
                StoreLock(spelling).acquire()


@pytest.mark.parametrize("path", [":memory:", "", "file::memory:", "file:shared?mode=memory&cache=shared", "file:"])
def test_a_store_sqlite_keeps_in_memory_takes_no_lock(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with StoreLock(path) as first, StoreLock(path) as second:
        assert first.lock_path is None and not first.held and not second.held
    assert list(tmp_path.iterdir()) == []
