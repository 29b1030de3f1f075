"""The SQLite task store's file: its connections, its schema, and bringing a file of an older version up
to date (columns added since the first schema are added on open; nothing is ever dropped)."""

from __future__ import annotations

import sqlite3

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
CREATE TABLE IF NOT EXISTS dead_letters (
    task_id TEXT PRIMARY KEY,
    entry BLOB NOT NULL,
    options TEXT NOT NULL,
    added_at REAL NOT NULL
);
"""

# Columns added after the first schema; a file written by an older version gains them on open.
_ADDED_COLUMNS = {
    "accepted_at": "REAL NOT NULL DEFAULT 0",
    "capability": "TEXT NOT NULL DEFAULT ''",
    "status": "INTEGER NOT NULL DEFAULT 0",
    "idempotency_key": "TEXT NOT NULL DEFAULT ''",
    "cancel_reason": "TEXT NOT NULL DEFAULT ''",
    "record": "BLOB",  # the finished task's TaskRecord
    "failures": "INTEGER NOT NULL DEFAULT 0",  # attempts that ran and failed (the retry budget)
    "reserved": "INTEGER NOT NULL DEFAULT 0",  # attempt numbers up to this may have been sent
    "owner": "TEXT NOT NULL DEFAULT ''",  # the principal that submitted it
    "dispatched_at": "REAL NOT NULL DEFAULT 0",  # when its current attempt was sent (a resume keeps it)
    "answers": "TEXT NOT NULL DEFAULT ''",  # the answers a slot-freeing wait was given so far
}

_INDEXES = """
CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks (state) WHERE state != 'finished';
CREATE INDEX IF NOT EXISTS tasks_by_key ON tasks (idempotency_key) WHERE idempotency_key != '';
CREATE INDEX IF NOT EXISTS tasks_by_age ON tasks (accepted_at);
CREATE INDEX IF NOT EXISTS tasks_finished_at ON tasks (updated_at) WHERE state = 'finished';
CREATE INDEX IF NOT EXISTS dead_letters_by_age ON dead_letters (added_at);
"""


def connect(path: str) -> sqlite3.Connection:
    """A connection to the store's file (autocommit: the store begins and commits its transactions)."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    connection.execute("PRAGMA busy_timeout=5000")  # the other connection's checkpoint or read
    connection.execute("PRAGMA synchronous=NORMAL")
    # Every UPDATE rewrites its whole row, a task's arguments with it; the pages of the old copy go to the free
    # list as they are, instead of being overwritten with zeros (which wrote each update of a 20 MiB argument
    # to the log twice: 40 MiB). The file keeps every task's arguments and record anyway.
    connection.execute("PRAGMA secure_delete=FAST")
    return connection


def prepare(db: sqlite3.Connection, *, log_kept_bytes: int) -> None:
    """Put the writer's connection in WAL mode (checkpoints left to the store) and the schema in place.

    Args:
        db: the writer's connection.
        log_kept_bytes: what the log file is cut back to (if it is bigger) when a commit starts it over.
    """
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # the reader thread checkpoints
    db.execute(f"PRAGMA journal_size_limit={int(log_kept_bytes)}")
    db.executescript(_SCHEMA)
    present = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    for column, declaration in _ADDED_COLUMNS.items():
        if column not in present:
            db.execute(f"ALTER TABLE tasks ADD COLUMN {column} {declaration}")
    db.executescript(_INDEXES)
