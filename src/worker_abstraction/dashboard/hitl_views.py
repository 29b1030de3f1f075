"""A task's human-in-the-loop side as JSON-ready dicts: its questions and their answers, the one it waits on,
its approval, its streamed output chunks, and the inbox's rows.

As in `views.py`, only plain values leave here (times as seconds since the epoch), and what a worker or a
person wrote is cut to a bounded length: a prompt, a schema, an answer, a reason, a chunk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from worker_abstraction.dashboard.views import JSON, NameOf, row_view, text
from worker_abstraction.exchanges import Approval, InputExchange, InputRequest, OutputChunk
from worker_abstraction.orchestrator.core.state import DROPPED
from worker_abstraction.types import TaskRecord, TaskStatus, TaskUpdate

WAITING = (TaskStatus.INPUT_REQUIRED, TaskStatus.APPROVAL_REQUIRED)  # what the inbox lists
MAX_PROMPT_SHOWN = 4_000  # characters of a prompt
MAX_SCHEMA_SHOWN = 20_000  # characters of a schema, indented
MAX_ANSWER_SHOWN = 4_000  # characters of an answer, as JSON
MAX_CHUNK_SHOWN = 16_000  # characters of one chunk sent to the page
MAX_EXCHANGES = 100  # of a task's questions shown (the latest)


def _nanoseconds(value: int) -> float | None:
    return value / 1e9 if value else None


def _schema_text(schema_json: str) -> str:
    """A question's schema, indented for a person to read ("" when it takes any JSON value)."""
    if not schema_json:
        return ""
    try:
        return text(json.dumps(json.loads(schema_json), indent=2, sort_keys=True), MAX_SCHEMA_SHOWN)
    except (ValueError, RecursionError):  # (checked when asked; shown as it came otherwise)
        return text(schema_json, MAX_SCHEMA_SHOWN)


def request_view(request: InputRequest) -> JSON:
    return {
        "request_id": request.request_id,
        "prompt": text(request.prompt, MAX_PROMPT_SHOWN),
        "schema": _schema_text(request.schema_json),
        "deadline": _nanoseconds(request.deadline_ns),
    }


def exchange_view(exchange: InputExchange) -> JSON:
    answer = exchange.answer
    return {
        **request_view(exchange.request),
        "asked_at": _nanoseconds(exchange.asked_at_ns),
        "attempt": exchange.attempt,
        "answer": None
        if answer is None
        else {
            "value": text(answer.value_json, MAX_ANSWER_SHOWN),
            "answered_by": answer.answered_by,
            "answered_at": _nanoseconds(answer.answered_at_ns),
        },
    }


def approval_view(approval: Approval) -> JSON:
    return {
        "approved": approval.approved,
        "decided_by": approval.decided_by,
        "reason": text(approval.reason, 500),
        "decided_at": _nanoseconds(approval.decided_at_ns),
    }


def exchanges_view(record: TaskRecord) -> JSON:
    """What a task's page shows of its questions and approval."""
    pending = record.input_request
    return {
        "input_request": request_view(pending) if pending is not None else None,
        "inputs": [exchange_view(e) for e in record.inputs[-MAX_EXCHANGES:]],
        "inputs_total": len(record.inputs),
        "approval_required": record.approval_required,
        "approval": approval_view(record.approval) if record.approval is not None else None,
    }


def is_chunk(update: TaskUpdate) -> bool:
    """A streamed chunk, or the mark left where an old one was dropped: not a change of the task's state."""
    return update.chunk is not None or DROPPED in update.metadata


def state_updates(updates: Sequence[TaskUpdate], limit: int) -> tuple[list[TaskUpdate], int]:
    """The latest `limit` updates that are not chunks, and how many there are in all."""
    shown: list[TaskUpdate] = []
    total = 0
    for update in reversed(updates):
        if is_chunk(update):
            continue
        total += 1
        if len(shown) < limit:
            shown.append(update)
    shown.reverse()
    return shown, total


def chunk_count(updates: Sequence[TaskUpdate]) -> int:
    """The number of the latest chunk the task streamed (0: none)."""
    for update in reversed(updates):
        if update.chunk is not None:
            return update.chunk.index
    return 0


def chunk_view(chunk: OutputChunk) -> JSON:
    """One chunk for the page: its number, and its text (a JSON chunk as its JSON text)."""
    return {
        "index": chunk.index,
        "text": text(chunk.text or chunk.data_json, MAX_CHUNK_SHOWN),
        "json": bool(chunk.data_json),
        "last": chunk.last,
    }


def exchange_note(update: TaskUpdate) -> str:
    """What an update says about a question, an answer or an approval, for the updates table ("": nothing)."""
    if update.input_request is not None:
        return text("asked: " + update.input_request.prompt, 200)
    if update.input_answer is not None:
        by = update.input_answer.answered_by
        return text(f"answered{' by ' + by if by else ''}: {update.input_answer.value_json}", 200)
    if update.approval is not None:
        decision = update.approval
        said = "approved" if decision.approved else "denied"
        by = f" by {decision.decided_by}" if decision.decided_by else ""
        return text(f"{said}{by}" + (f": {decision.reason}" if decision.reason else ""), 200)
    if update.status is TaskStatus.APPROVAL_REQUIRED:
        return "waits for an operator's approval"
    return ""


def inbox_row(record: TaskRecord, name_of: NameOf) -> JSON:
    """A task waiting for a person: its row, what it waits for, and the question (if any)."""
    row = row_view(record, name_of)
    pending = record.input_request
    asked = record.inputs[-1].asked_at_ns if pending is not None and record.inputs else 0
    row["waiting_for"] = "input" if record.status is TaskStatus.INPUT_REQUIRED else "approval"
    row["prompt"] = text(pending.prompt, 300) if pending is not None else ""
    row["deadline"] = _nanoseconds(pending.deadline_ns) if pending is not None else None
    row["waiting_since"] = _nanoseconds(asked) if pending is not None else row["updated_at"]
    return row
