"""The SQLite task store's reads: the `SELECT` queries behind `SqliteTaskStore`'s listings and look-ups.

Each function takes the store's `_query` (as `fetch`) (which commits what is pending first, so that a read made after a
write sees it, and runs the statement on the reader's connection) and turns the rows into what the store returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from worker_abstraction.stores.tasks import StoredDeadLetter, StoredTask
from worker_abstraction.types import TaskQuery

Query = Callable[..., Awaitable[list[tuple[Any, ...]]]]  # (sql, parameters=()) -> rows


async def unfinished(fetch: Query) -> list[StoredTask]:
    rows = await fetch(
        "SELECT task_id, task, options, worker_id, worker_address, attempt, cancel_reason, failures, reserved, "
        "dispatched_at, answers FROM tasks "
        "WHERE state != 'finished' ORDER BY accepted_at, updated_at"
    )
    return [StoredTask(*row) for row in rows]


async def finished_record(fetch: Query, task_id: str) -> bytes | None:
    rows = await fetch(
        "SELECT record FROM tasks WHERE task_id = ? AND state = 'finished' AND record IS NOT NULL", (task_id,)
    )
    return bytes(rows[0][0]) if rows else None


async def finished_by_key(fetch: Query, idempotency_key: str) -> bytes | None:
    rows = await fetch(
        "SELECT record FROM tasks WHERE idempotency_key = ? AND state = 'finished' AND record IS NOT NULL "
        "ORDER BY accepted_at DESC LIMIT 1",
        (idempotency_key,),
    )
    return bytes(rows[0][0]) if rows else None


async def submission(fetch: Query, task_id: str) -> StoredTask | None:
    rows = await fetch("SELECT task_id, task, options FROM tasks WHERE task_id = ?", (task_id,))
    return StoredTask(rows[0][0], bytes(rows[0][1]), rows[0][2]) if rows else None


async def finished_records(fetch: Query, query: TaskQuery, *, limit: int, offset: int) -> list[bytes]:
    where, parameters = ["state = 'finished'", "record IS NOT NULL"], list[Any]()
    if query.statuses:
        where.append(f"status IN ({', '.join('?' * len(query.statuses))})")
        parameters.extend(int(status) for status in query.statuses)
    if query.capability:
        where.append("capability = ?")
        parameters.append(query.capability)
    if query.owner is not None:
        where.append("owner = ?")
        parameters.append(query.owner)
    if query.worker_id:  # the worker of the latest attempt, written with the finished record
        where.append("worker_id = ?")
        parameters.append(query.worker_id)
    # Submitted is read as accepted (a column; the record's submitted_at is inside its blob): moments apart,
    # unless a caller set its task's creation time itself.
    if query.since is not None:
        where.append("accepted_at >= ?")
        parameters.append(query.since_seconds)
    if query.until is not None:
        where.append("accepted_at < ?")
        parameters.append(query.until_seconds)
    if query.task_id_prefix:  # the range lets the primary key's index find them; substr makes it exact
        where.append("task_id >= ? AND substr(task_id, 1, ?) = ?")
        parameters.extend((query.task_id_prefix, len(query.task_id_prefix), query.task_id_prefix))
    rows = await fetch(
        f"SELECT record FROM tasks WHERE {' AND '.join(where)} ORDER BY accepted_at DESC, task_id LIMIT ? OFFSET ?",
        (*parameters, limit, offset),
    )
    return [bytes(row[0]) for row in rows]


async def dead_letters(fetch: Query) -> list[StoredDeadLetter]:
    rows = await fetch("SELECT entry, options FROM dead_letters ORDER BY added_at")
    return [StoredDeadLetter(bytes(entry), options) for entry, options in rows]
