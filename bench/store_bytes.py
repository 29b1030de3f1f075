"""How many bytes a workflow leaves in a daemon's store (scenario 8), and how they grow with its steps.

- **SQLite**: the bytes of the workflow's rows in the `tasks` table (its own row and each step task's,
  `<workflow_id>` and `<workflow_id>.*`: the sum of every column's length), read once every one of them is finished
  (the finished record is written behind the task's end); and, beside it, how many bytes of the file's pages
  the table and its indexes use (`dbstat`) before and after.
- **NATS**: how many bytes every JetStream stream holds (the task documents' bucket, the update log, ...),
  before and after. A finished task's live key leaves a marker that expires after a few seconds; the bench
  reads the streams once those have expired, so that what is counted is what stays.

`growth` fits a straight line through (steps, bytes) points of one shape of workflow: bytes per step (the
slope), bytes per workflow (the intercept), and how far the farthest point lies from the line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# The tasks table and the indexes the SQLite store keeps on it (worker_abstraction/stores/sqlite_schema.py).
_TASK_OBJECTS = ("tasks", "sqlite_autoindex_tasks_1", "tasks_unfinished", "tasks_by_key", "tasks_by_age")


@dataclass(frozen=True)
class Rows:
    """A workflow's rows in a SQLite store: how many, how many finished, and their bytes."""

    rows: int
    finished: int
    bytes: int


def _open_read_only(path: Path) -> sqlite3.Connection:
    # Read-only beside the daemon, which holds the writer's connection (a WAL reader never blocks it).
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)


def sqlite_rows(path: Path, workflow_id: str) -> Rows:
    """The rows of a workflow and of its steps' tasks (ids `<workflow_id>` and `<workflow_id>.<...>`)."""
    columns = "SELECT group_concat(name, '), 0) + ifnull(length(') FROM pragma_table_info('tasks')"
    with _open_read_only(path) as db:
        (joined,) = db.execute(columns).fetchone()
        size = f"ifnull(length({joined}), 0)"  # (a number's length is that of its text)
        rows, finished, total = db.execute(
            f"SELECT count(*), count(*) FILTER (WHERE state = 'finished'), ifnull(sum({size}), 0) FROM tasks"
            " WHERE task_id = ? OR substr(task_id, 1, ?) = ?",
            (workflow_id, len(workflow_id) + 1, workflow_id + "."),
        ).fetchone()
    return Rows(rows, finished, total)


def sqlite_pages_in_use(path: Path) -> int:
    """Bytes of the file's pages the tasks table and its indexes fill (pages' sizes less their free space)."""
    marks = ", ".join("?" for _ in _TASK_OBJECTS)
    with _open_read_only(path) as db:
        (used,) = db.execute(
            f"SELECT ifnull(sum(pgsize - unused), 0) FROM dbstat WHERE name IN ({marks})", _TASK_OBJECTS
        ).fetchone()
    return int(used)


async def nats_stream_bytes(url: str) -> dict[str, int]:
    """Bytes each JetStream stream of the server at `url` holds, by stream name."""
    import nats

    client = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        streams = await client.jetstream(timeout=5).streams_info()
    finally:
        await client.close()
    return {stream.config.name or "": stream.state.bytes for stream in streams}


def difference(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """What each stream gained (a stream made meanwhile gained all it holds); streams that did not change left out."""
    gained = {name: after.get(name, 0) - before.get(name, 0) for name in {*before, *after}}
    return {name: gained[name] for name in sorted(gained) if gained[name]}


@dataclass(frozen=True)
class Growth:
    """A straight line through (steps, bytes): `per_step` bytes a step, `per_workflow` bytes whatever the
    steps; `worst_deviation` the largest distance of a point from the line, as a share of that point's bytes
    (None through two points, which any line passes through)."""

    per_step: float
    per_workflow: float
    worst_deviation: float | None


def growth(points: Sequence[tuple[int, int]]) -> Growth:
    """The least-squares line through at least two (steps, bytes) points with different steps.

    Raises:
        ValueError: fewer than two different step counts.
    """
    if len({steps for steps, _ in points}) < 2:
        raise ValueError(f"a line needs two different step counts, got {list(points)}")
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    intercept = mean_y - slope * mean_x
    worst = max(abs(y - (intercept + slope * x)) / y if y else 0.0 for x, y in points) if n > 2 else None
    return Growth(slope, intercept, worst)
