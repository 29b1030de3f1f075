"""The orchestrator daemon's default task store: one SQLite file.

Writes go through one background thread in order, each fact in its own transaction, so a crash between
"accepted" and "dispatched" leaves the task accepted (it is queued again on restart), never lost.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from worker_abstraction.stores.tasks import StoredTask

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    task BLOB NOT NULL,
    options TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'dispatched', 'finished')),
    worker_id TEXT NOT NULL DEFAULT '',
    worker_address TEXT NOT NULL DEFAULT '',
    attempt INTEGER NOT NULL DEFAULT 0,
    final BLOB,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks (state) WHERE state != 'finished';
"""


class SqliteTaskStore:
    """Tasks in a SQLite file (WAL mode; one writer thread keeps writes ordered)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        # One thread owns the connection: sqlite3 connections are not shared across threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="task-store")
        self._db: sqlite3.Connection | None = None

    async def open(self) -> SqliteTaskStore:
        await self._run(self._open)
        return self

    def _open(self) -> None:
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    async def accepted(self, task_id: str, task: bytes, options: str) -> None:
        await self._write(
            "INSERT OR REPLACE INTO tasks (task_id, task, options, state, updated_at) VALUES (?, ?, ?, 'queued', ?)",
            (task_id, task, options, time.time()),
        )

    async def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        await self._write(
            "UPDATE tasks SET state = 'dispatched', worker_id = ?, worker_address = ?, attempt = ?, updated_at = ? "
            "WHERE task_id = ? AND state != 'finished'",
            (worker_id, worker_address, attempt, time.time(), task_id),
        )

    async def requeued(self, task_id: str) -> None:
        await self._write(
            "UPDATE tasks SET state = 'queued', worker_id = '', worker_address = '', updated_at = ? "
            "WHERE task_id = ? AND state != 'finished'",
            (time.time(), task_id),
        )

    async def finished(self, task_id: str, final: bytes) -> None:
        await self._write(
            "UPDATE tasks SET state = 'finished', final = ?, updated_at = ? WHERE task_id = ?",
            (final, time.time(), task_id),
        )

    async def unfinished(self) -> list[StoredTask]:
        rows = await self._run(
            self._query,
            "SELECT task_id, task, options, worker_id, worker_address, attempt FROM tasks "
            "WHERE state != 'finished' ORDER BY updated_at",
        )
        return [StoredTask(*row) for row in rows]

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def _write(self, sql: str, parameters: tuple[Any, ...]) -> None:
        await self._run(self._execute, sql, parameters)

    def _execute(self, sql: str, parameters: tuple[Any, ...]) -> None:
        assert self._db is not None, "open() the store first"
        self._db.execute(sql, parameters)  # autocommit: each statement is its own transaction

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        assert self._db is not None, "open() the store first"
        return list(self._db.execute(sql).fetchall())

    async def _run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
