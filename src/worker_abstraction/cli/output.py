"""How the `wa` commands print a task's updates and errors, as text or as JSON, in one place."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from worker_abstraction.types import TaskStatus, TaskUpdate


def status_line(update: TaskUpdate) -> str:
    """An update as `wa submit` prints it: the status, a running task's progress and message, and why a task
    went back to PENDING (its attempt failed and another follows) or was CANCELED (a failure's error is
    printed on its own, on stderr)."""
    line = update.status.name
    if update.status is TaskStatus.RUNNING and (update.progress or update.progress_message):
        line += f" {update.progress:.0%} {update.progress_message}".rstrip()
    elif update.error_message and update.status in (TaskStatus.PENDING, TaskStatus.CANCELED):
        line += f" ({update.error_message.splitlines()[0][:300]})"
    return line


def print_error(exc: BaseException) -> None:
    """`Type: message` on stderr."""
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def iso(moment: datetime | None) -> str | None:
    """A time as ISO 8601 in UTC (`...+00:00`), or None."""
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def update_to_json(update: TaskUpdate) -> dict[str, Any]:
    """The `--json` form of one update; `failure` only when the update carries one."""
    document: dict[str, Any] = {
        "event": "update",
        "task_id": update.task_id,
        "status": update.status.name,
        "sequence": update.sequence,
        "attempt": update.attempt,
        "worker_id": update.worker_id,
        "progress": update.progress,
        "progress_message": update.progress_message,
        "error_message": update.error_message,
        "timestamp": iso(update.timestamp),
    }
    if update.failure is not None:
        document["failure"] = {
            "type": update.failure.type,
            "message": update.failure.message,
            "retryable": update.failure.retryable,
            "origin": update.failure.origin.name,
        }
    return document


def error_to_json(exc: BaseException) -> dict[str, str]:
    """The `--json` form of an error: its class name and message."""
    return {"type": type(exc).__name__, "message": str(exc)}
