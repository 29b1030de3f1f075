"""SqliteScheduleBook: the schedules of a daemon on a SQLite task store, in a table of the same file.

Schedules change seldom (a firing writes one row), so each call opens its own connection on a thread of
its own, apart from the task store's writer and reader.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

from worker_abstraction.errors import ScheduleExistsError, ScheduleNotFoundError
from worker_abstraction.schedules.book import Document

_SCHEMA = """CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    state TEXT NOT NULL
)"""


class SqliteScheduleBook:
    shared = False

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = asyncio.Lock()  # one call at a time: a firing's write never races a caller's

    async def load(self) -> list[tuple[Document, Document]]:
        rows = await self._run("SELECT definition, state FROM schedules ORDER BY name", ())
        return [(json.loads(d), json.loads(s)) for d, s in rows]

    async def get(self, name: str) -> tuple[Document, Document] | None:
        rows = await self._run("SELECT definition, state FROM schedules WHERE name = ?", (name,))
        return (json.loads(rows[0][0]), json.loads(rows[0][1])) if rows else None

    async def create(self, name: str, definition: Document, state: Document) -> None:
        try:
            await self._run("INSERT INTO schedules VALUES (?, ?, ?)", (name, json.dumps(definition), json.dumps(state)))
        except sqlite3.IntegrityError:
            raise ScheduleExistsError(name) from None

    async def put_definition(self, name: str, definition: Document) -> None:
        changed = await self._run(
            "UPDATE schedules SET definition = ? WHERE name = ? RETURNING name", (json.dumps(definition), name)
        )
        if not changed:
            raise ScheduleNotFoundError(name)

    async def put_state(self, name: str, state: Document) -> None:
        await self._run("UPDATE schedules SET state = ? WHERE name = ?", (json.dumps(state), name))

    async def remove(self, name: str) -> bool:
        return bool(await self._run("DELETE FROM schedules WHERE name = ? RETURNING name", (name,)))

    async def aclose(self) -> None:
        pass

    async def _run(self, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._lock:
            return await asyncio.to_thread(self._execute, sql, parameters)

    def _execute(self, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.path, timeout=10.0)
        try:
            db.execute(_SCHEMA)
            rows = list(db.execute(sql, parameters).fetchall())
            db.commit()
            return rows
        finally:
            db.close()
