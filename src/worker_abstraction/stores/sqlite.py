"""The orchestrator daemon's default task store: one SQLite file.

Writes are committed on the event loop's own thread, on the turn of the loop after the first of them (or
when `flush()` asks, once a batch of them is made), and every fact made meanwhile shares one transaction
(group commit). Facts nobody waits for (written behind: dispatched, finished, ...) wait up to
`BEHIND_SECONDS` (5 ms) for such a commit, so that they share an acceptance's rather than cost one of
their own (and the network writes of their turn go out first). Each write returns only once its
transaction is committed, so a crash between "accepted" and "dispatched" leaves the task accepted (it is
queued again on restart), never lost, and thousands of tasks a second cost a few transactions, not
thousands. In WAL mode with `synchronous=NORMAL` a commit appends to the log without
waiting for the disk, which is quicker than handing the batch to a thread and back (two wake-ups, and the
interpreter lock bouncing between them; measured: a batch committed on a thread took three times as long).
Reads, and the checkpoints that fold the log back into the database and do wait for the disk, run on a
thread of their own with a connection of their own. A checkpoint starts once the log holds
`checkpoint_bytes` (16 MiB) and copies it while commits go on; then commits wait for its last pass, which
copies only what they wrote meanwhile (a millisecond or two; the loop goes on with everything else), so
that the next commit starts the log over even under a load that never pauses. Should the log reach
`log_limit_bytes` (64 MiB) before a checkpoint ends, commits wait for it: the log stays under that plus
one group commit. A database kept in memory (`:memory:`, a `mode=memory` URI) is private to its one
connection, which then reads too, on the loop.

A commit that writes none of its facts (a full disk, a file gone read-only or damaged) makes the store
not `writable` until a commit writes again; `on_writable` hears each change (the daemon's health check).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from worker_abstraction.stores import sqlite_reads
from worker_abstraction.stores.lock import StoreLock, database_file
from worker_abstraction.stores.sqlite_batch import MOOT, Fact, commit, settle
from worker_abstraction.stores.sqlite_checkpoint import CHECKPOINT_BYTES, LOG_LIMIT_BYTES, LogCheckpoints
from worker_abstraction.stores.sqlite_schema import connect, prepare
from worker_abstraction.stores.tasks import Stored, StoredDeadLetter, StoredTask
from worker_abstraction.types import TaskQuery

logger = logging.getLogger(__name__)

_SOON, _LATER = "soon", "later"  # when the scheduled commit runs: next turn, or a little later
# How long facts written behind may wait for a commit somebody waits for (an acceptance), so that they share
# it rather than cost one of their own.
BEHIND_SECONDS = 0.005


class SqliteTaskStore:
    """Tasks in a SQLite file (WAL mode; writes committed in order on the loop, reads on a thread).

    Args:
        path: the database file (or `:memory:`).
        checkpoint_bytes: the log's size at which a checkpoint starts (commits go on while it copies the log).
        log_limit_bytes: the log's size at which commits wait for the checkpoint under way to end.
        behind_seconds: how long facts written behind may wait to share a commit somebody waits for.
        on_commit: called with the seconds each group commit took (e.g. a metrics histogram's `observe`).
        on_checkpoint: called as each checkpoint ends, with the seconds it took and the seconds commits waited
            for it (its last pass, or more if the log reached `log_limit_bytes`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        checkpoint_bytes: int = CHECKPOINT_BYTES,
        log_limit_bytes: int = LOG_LIMIT_BYTES,
        behind_seconds: float = BEHIND_SECONDS,
        on_commit: Callable[[float], None] | None = None,
        on_checkpoint: Callable[[float, float], None] | None = None,
    ) -> None:
        self.path = str(path)
        self._on_commit = on_commit
        self._checkpoint_bytes = checkpoint_bytes
        self._behind_seconds = behind_seconds
        self._db: sqlite3.Connection | None = None  # the writer, used on the loop's thread only
        # The reader thread owns the other connection: sqlite3 connections are not shared across threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="task-store")
        self._reader: sqlite3.Connection | None = None
        self._lock = StoreLock(self.path)
        # A database kept in memory is private to its connection: the writer reads it too, on the loop.
        file = database_file(self.path)
        self._in_memory = file is None
        self._pending: list[Fact] = []  # facts not yet committed, in order
        # What this batch's facts written behind share: one future, done when their commit ends.
        self._behind: asyncio.Future[None] | None = None
        # Task id -> the position in `_pending` of its dispatched fact: a finished fact in the same batch
        # makes it moot (the finished fact writes the worker a listing reads), so it is not written at all.
        self._dispatched: dict[str, int] = {}
        self._checkpoints = LogCheckpoints(
            f"{file}-wal",
            self._executor,
            lambda: self._reader,
            self._commit_pending,
            checkpoint_bytes=checkpoint_bytes,
            log_limit_bytes=max(log_limit_bytes, checkpoint_bytes),
            on_checkpoint=on_checkpoint,
        )
        self._commit_due: str | None = None  # _SOON or _LATER once a commit is scheduled
        self._soon: asyncio.Handle | None = None  # the commit on the next turn, if one is due
        self._later: asyncio.TimerHandle | None = None  # the commit of facts written behind, if one is due
        self.writable = True  # False while commits write none of their facts
        self.on_writable: Callable[[bool], None] | None = None  # called on the loop when `writable` changes

    async def open(self) -> SqliteTaskStore:
        """Take the store and open it.

        Raises:
            StoreInUseError: another store (another daemon) holds this file; it was not opened.
        """
        self._lock.acquire()  # before SQLite touches the file: a refused second daemon changes nothing
        try:
            self._db = connect(self.path)
            # A log that starts over is cut back to the size that starts a checkpoint, so that the file grows past
            # it again only once as much has been written since (most commits overwrite; only the tail, what was
            # written while a checkpoint ran, is cut).
            prepare(self._db, log_kept_bytes=self._checkpoint_bytes)
            await self._run(self._open_reader)
        except Exception:
            await self.close()  # a half-opened store holds neither the file nor the lock
            raise
        return self

    def _open_reader(self) -> None:
        if not self._in_memory:
            self._reader = connect(self.path)

    def accepted(
        self,
        task_id: str,
        task: bytes,
        options: str,
        *,
        capability: str = "",
        idempotency_key: str = "",
        reserved: int = 0,
        owner: str = "",
        then: Stored | None = None,
    ) -> asyncio.Future[None]:
        now = time.time()
        return self._write(
            "INSERT OR REPLACE INTO tasks (task_id, task, options, state, capability, idempotency_key, accepted_at, "
            "updated_at, reserved, owner) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
            (task_id, task, options, capability, idempotency_key, now, now, reserved, owner),
            then=then,
        )

    def reserve(self, task_id: str, up_to: int) -> asyncio.Future[None]:
        return self._write(
            "UPDATE tasks SET reserved = MAX(reserved, ?), updated_at = ? WHERE task_id = ? AND state != 'finished'",
            (up_to, time.time(), task_id),
        )

    def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> asyncio.Future[None]:
        # The row keeps its state ('queued': unfinished) and gains its worker: `state` is in the unfinished
        # index, and moving every task's entry there on every dispatch cost ~15 % of the writes' CPU (files
        # written by older versions may say 'dispatched'; only 'finished' or not is ever read).
        written = self._write(
            "UPDATE tasks SET worker_id = ?, worker_address = ?, attempt = ?, updated_at = ?, dispatched_at = ? "
            "WHERE task_id = ? AND state != 'finished'",
            (worker_id, worker_address, attempt, time.time(), time.time(), task_id),
            behind=True,
        )
        self._dispatched[task_id] = len(self._pending) - 1
        return written

    def requeued(self, task_id: str, attempt: int = 0, failures: int = 0) -> asyncio.Future[None]:
        return self._write(
            "UPDATE tasks SET state = 'queued', worker_id = '', worker_address = '', attempt = MAX(attempt, ?), "
            "failures = ?, updated_at = ? WHERE task_id = ? AND state != 'finished'",
            (attempt, failures, time.time(), task_id),
            behind=True,
        )

    def answered(self, task_id: str, answers: str) -> asyncio.Future[None]:
        return self._write(
            "UPDATE tasks SET answers = ?, updated_at = ? WHERE task_id = ? AND state != 'finished'",
            (answers, time.time(), task_id),
        )

    def cancel_requested(self, task_id: str, reason: str) -> asyncio.Future[None]:
        return self._write(
            "UPDATE tasks SET cancel_reason = ?, updated_at = ? WHERE task_id = ? AND state != 'finished'",
            (reason, time.time(), task_id),
        )

    def finished(self, task_id: str, record: bytes, status: int, worker_id: str = "") -> asyncio.Future[None]:
        moot = self._dispatched.pop(task_id, None)
        if moot is not None:
            self._pending[moot] = MOOT
        return self._write(
            "UPDATE tasks SET state = 'finished', record = ?, status = ?, worker_id = ?, updated_at = ? "
            "WHERE task_id = ?",
            (record, status, worker_id, time.time(), task_id),
            behind=True,
        )

    async def unfinished(self) -> list[StoredTask]:
        return await sqlite_reads.unfinished(self._query)

    async def finished_record(self, task_id: str) -> bytes | None:
        return await sqlite_reads.finished_record(self._query, task_id)

    async def finished_by_key(self, idempotency_key: str) -> bytes | None:
        return await sqlite_reads.finished_by_key(self._query, idempotency_key)

    async def submission(self, task_id: str) -> StoredTask | None:
        return await sqlite_reads.submission(self._query, task_id)

    async def finished_records(self, query: TaskQuery, *, limit: int, offset: int) -> list[bytes]:
        return await sqlite_reads.finished_records(self._query, query, limit=limit, offset=offset)

    def dead_lettered(self, task_id: str, entry: bytes, options: str) -> asyncio.Future[None]:
        return self._write(
            "INSERT OR REPLACE INTO dead_letters (task_id, entry, options, added_at) VALUES (?, ?, ?, ?)",
            (task_id, entry, options, time.time()),
            behind=True,
        )

    def dead_letters_removed(self, task_ids: Sequence[str]) -> asyncio.Future[Any]:
        return asyncio.gather(
            *(self._write("DELETE FROM dead_letters WHERE task_id = ?", (i,), behind=True) for i in task_ids)
        )

    async def dead_letters(self) -> list[StoredDeadLetter]:
        return await sqlite_reads.dead_letters(self._query)

    async def expire_finished(
        self, before: float, *, capability: str | None = None, other_than: Sequence[str] = (), limit: int = 500
    ) -> list[str]:
        """Delete up to `limit` tasks that finished before `before` (epoch seconds): of `capability`, or of
        any capability but those in `other_than`; their ids (their idempotency keys go with them). The space
        is reused by later tasks: the file stops growing once as much expires as comes in."""
        where, parameters = "state = 'finished' AND updated_at < ?", list[object]([before])
        if capability is not None:
            where += " AND capability = ?"
            parameters.append(capability)
        elif other_than:
            where += f" AND capability NOT IN ({', '.join('?' for _ in other_than)})"
            parameters += list(other_than)
        rows = await self._query(
            f"SELECT task_id FROM tasks WHERE {where} ORDER BY updated_at LIMIT ?", (*parameters, limit)
        )
        ids = [str(row[0]) for row in rows]
        # One statement (one fact) for up to 500 of them (SQLite takes 999 parameters at least): a fact per task
        # cost the loop more than the deletion itself (its future and callback; a batch of 500 held the loop
        # 4.4 ms that way, 2.4 ms so).
        chunks = [ids[at : at + 500] for at in range(0, len(ids), 500)]
        await asyncio.gather(
            *(
                self._write(
                    f"DELETE FROM tasks WHERE state = 'finished' AND task_id IN ({', '.join('?' * len(chunk))})",
                    tuple(chunk),
                )
                for chunk in chunks
            )
        )
        return ids

    async def expire_dead_letters(self, before: float, *, limit: int = 500) -> list[str]:
        """Delete up to `limit` dead letters kept since before `before`; their ids."""
        rows = await self._query(
            "SELECT task_id FROM dead_letters WHERE added_at < ? ORDER BY added_at LIMIT ?", (before, limit)
        )
        ids = [str(row[0]) for row in rows]
        chunks = [ids[at : at + 500] for at in range(0, len(ids), 500)]  # (as expire_finished does)
        await asyncio.gather(
            *(
                self._write(f"DELETE FROM dead_letters WHERE task_id IN ({', '.join('?' * len(chunk))})", tuple(chunk))
                for chunk in chunks
            )
        )
        return ids

    async def close(self) -> None:
        self._checkpoints.closing = True  # no checkpoint pass starts from now on
        await self._run(_nothing)  # a pass under way ends first
        self._checkpoints.held = False
        self._commit_pending()
        if self._db is not None:
            self._db.close()
            self._db = None
        await self._run(self._close_reader)
        self._executor.shutdown(wait=True)
        self._lock.release()  # only once the database is closed

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def flush(self) -> None:
        """Commit now the facts somebody waits for (and those written behind with them) rather than on the
        loop's next turn: for a caller that has just made a batch of them (a message's submissions), whose
        answers then leave a turn sooner. Nothing happens while commits wait for a checkpoint (they are
        committed once it ends) or when no such fact waits."""
        if self._commit_due is _SOON and not self._checkpoints.held:
            self._commit_pending()

    def _write(
        self, sql: str, parameters: tuple[Any, ...], *, behind: bool = False, then: Stored | None = None
    ) -> asyncio.Future[None]:
        """Queue one fact, now: the future is done once it is committed (with the rest of this turn's).

        Queued when called, not when awaited: the store receives facts in the order they happen, and a
        fact written behind (`behind`: nobody waits for it) costs no task of its own and is committed with
        the next fact somebody waits for, or `behind_seconds` later. Facts written behind share one future
        per commit (it fails with the first of theirs that failed). `then(None)` (or `then(error)`) is
        called as the commit ends, not on a later turn as the future's callbacks are.
        """
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] | None = None if behind else loop.create_future()
        if behind and self._behind is None:
            self._behind = loop.create_future()
        if not self._checkpoints.held:
            if not behind:
                if self._commit_due is not _SOON:
                    self._commit_due = _SOON
                    self._soon = loop.call_soon(self._commit_pending)
            elif self._commit_due is None:
                # A little later: what this turn wrote to the network goes out first (a finished task's record
                # never delays the update it follows), and the facts join the next acceptance's commit, if
                # one comes meanwhile, rather than cost a commit of their own.
                self._commit_due = _LATER
                self._later = loop.call_later(self._behind_seconds, self._commit_pending)
        self._pending.append((sql, parameters, written, then))
        if written is None:
            assert self._behind is not None
            return self._behind
        return written

    def _commit_pending(self) -> None:
        if self._checkpoints.held:
            return  # committed once the checkpoint ends
        self._commit_due = None
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        if self._later is not None:
            self._later.cancel()
            self._later = None
        batch, self._pending = self._pending, []
        behind, self._behind = self._behind, None
        self._dispatched.clear()
        if not batch:
            return
        if self._on_commit is None:
            outcomes = commit(self._db, batch)
        else:
            began = time.perf_counter()
            outcomes = commit(self._db, batch)
            self._on_commit(time.perf_counter() - began)
        settle(batch, outcomes, behind)
        if self._db is not None:  # (a closed store refuses every write; that is not a broken file)
            self._note_writable(any(outcome is None for outcome in outcomes))
        if not self._in_memory:
            self._checkpoints.watch()

    def _note_writable(self, writable: bool) -> None:
        if writable != self.writable:
            self.writable = writable
            if self.on_writable is not None:
                self.on_writable(writable)

    def _fetch(self, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        assert self._reader is not None, "open() the store first"
        return list(self._reader.execute(sql, parameters).fetchall())

    async def _query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        self._commit_pending()  # a read made after a write sees it
        if self._pending:  # (commits wait for a checkpoint)
            waits = {written for _, _, written, _ in self._pending if written is not None}
            if self._behind is not None:
                waits.add(self._behind)
            await asyncio.gather(*waits, return_exceptions=True)
        if self._in_memory:
            assert self._db is not None, "open() the store first"
            return list(self._db.execute(sql, parameters).fetchall())
        result: list[tuple[Any, ...]] = await self._run(self._fetch, sql, parameters)
        return result

    async def _run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)


def _nothing() -> None:
    return None
