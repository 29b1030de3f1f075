"""How the `wa` commands print a task's updates and errors, as text or as JSON, in one place."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from worker_abstraction.exchanges import Approval, InputAnswer, InputRequest
from worker_abstraction.types import TaskStatus, TaskUpdate

DROPPED = "wa-dropped"  # metadata of the update that stands where old chunks were dropped (`core.state.DROPPED`)


def status_line(update: TaskUpdate) -> str:
    """An update as `wa submit` prints it: the status, a running task's progress and message, the question a
    task waits on (INPUT_REQUIRED), and why a task went back to PENDING (its attempt failed and another
    follows) or was CANCELED (a failure's error is printed on its own, on stderr)."""
    line = update.status.name
    if update.status is TaskStatus.RUNNING and (update.progress or update.progress_message):
        line += f" {update.progress:.0%} {update.progress_message}".rstrip()
    elif update.status is TaskStatus.INPUT_REQUIRED and update.input_request is not None:
        line += f" ({first_line(update.input_request.prompt) or update.input_request.request_id})"
    elif update.error_message and update.status in (TaskStatus.PENDING, TaskStatus.CANCELED):
        line += f" ({first_line(update.error_message)})"
    return line


def first_line(text: str, width: int = 300) -> str:
    """The first line of `text`, cut to `width` characters: what fits on a status line."""
    lines = text.splitlines()
    return lines[0][:width] if lines else ""


def is_output(update: TaskUpdate) -> bool:
    """Whether `update` only carries streamed output (a chunk, or the mark of dropped ones) and no change of
    status: the status lines skip it, since a task that streams would print one RUNNING line per chunk."""
    return update.chunk is not None or DROPPED in update.metadata


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
    if update.input_request is not None:
        document["input_request"] = request_to_json(update.input_request)
    if update.input_answer is not None:
        document["input_answer"] = answer_to_json(update.input_answer)
    if update.approval is not None:
        document["approval"] = approval_to_json(update.approval)
    return document


def request_to_json(request: InputRequest) -> dict[str, Any]:
    """The `--json` form of a handler's question; `schema` decoded (null: any JSON value is an answer)."""
    return {
        "request_id": request.request_id,
        "prompt": request.prompt,
        "schema": request.schema,
        "deadline": iso(request.deadline),
    }


def answer_to_json(answer: InputAnswer) -> dict[str, Any]:
    """The `--json` form of an answer; `answered_by` is empty when the daemon checks no credentials."""
    return {
        "request_id": answer.request_id,
        "value": answer.value,
        "answered_by": answer.answered_by,
        "answered_at": iso(answer.answered_at),
    }


def approval_to_json(approval: Approval) -> dict[str, Any]:
    """The `--json` form of an approval decision."""
    return {
        "approved": approval.approved,
        "decided_by": approval.decided_by,
        "reason": approval.reason,
        "decided_at": iso(approval.decided_at),
    }


def error_to_json(exc: BaseException) -> dict[str, str]:
    """The `--json` form of an error: its class name and message."""
    return {"type": type(exc).__name__, "message": str(exc)}
