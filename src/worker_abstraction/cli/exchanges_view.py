"""How `wa task get` and `wa respond` show what a task exchanged with people: the questions its handler asked
and their answers (who gave them, when), and the approval decision on a task that needed one.

Text for the eyes (one `key  value` fact, then an indented block per question) and JSON for programs, in
one place so `wa task get --json`, `wa task list --json` and `wa respond` say the same.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from worker_abstraction.cli.output import answer_to_json, approval_to_json, iso, request_to_json
from worker_abstraction.exchanges import Approval, InputExchange, InputRequest
from worker_abstraction.types import TaskRecord, TaskStatus

NOBODY = "-"  # who answered or decided when the daemon checks no credentials (nobody is named)


def when(moment: datetime | None) -> str:
    """A time as `wa task get` prints them: UTC to the millisecond, `-` for none."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def compact(value: Any) -> str:
    """A JSON value on one line."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def deadline_text(request: InputRequest, now: datetime) -> str:
    """When the handler stops waiting for an answer: `none`, or the time and how far off it is."""
    deadline = request.deadline
    if deadline is None:
        return "none (the handler waits as long as the task may)"
    left = (deadline - now).total_seconds()
    return f"{when(deadline)} ({f'in {left:.0f}s' if left >= 0 else 'passed'})"


def approval_fact(record: TaskRecord) -> str | None:
    """The `approval` fact of `wa task get` (None: the task needed no approval)."""
    if record.approval is not None:
        return decision_text(record.approval)
    if not record.approval_required:
        return None
    if record.status is TaskStatus.APPROVAL_REQUIRED:
        return "required, waiting (wa approve / wa deny)"
    return "required, not decided"


def decision_text(approval: Approval) -> str:
    """`approved by alice at ...: reason`, or `denied by ...`."""
    verdict = "approved" if approval.approved else "denied"
    text = f"{verdict} by {approval.decided_by or NOBODY} at {when(approval.decided_at)}"
    return f"{text}: {approval.reason}" if approval.reason else text


def question_lines(request: InputRequest, now: datetime) -> list[str]:
    """A question as `key  value` lines: its id, prompt, schema (compact JSON) and deadline."""
    schema = request.schema
    facts = [
        ("question", request.request_id),
        ("prompt", request.prompt or "-"),
        ("schema", compact(schema) if schema is not None else "none (any JSON value)"),
        ("deadline", deadline_text(request, now)),
    ]
    width = max(len(key) for key, _ in facts)
    return [f"{key:<{width}}  {value}" for key, value in facts]


def exchange_lines(record: TaskRecord, now: datetime) -> list[str]:
    """The `questions` block of `wa task get`: each question, then its answer (value, who, when) or why it has
    none. Empty when the handler asked nothing."""
    if not record.inputs:
        return []
    waiting = record.input_request
    lines = [f"questions ({len(record.inputs)}):"]
    for exchange in record.inputs:
        request = exchange.request
        attempt = f", attempt {exchange.attempt}" if exchange.attempt else ""
        lines.append(f"  {request.request_id}  asked {when(exchange.asked_at)}{attempt}")
        lines += ["    " + line for line in question_lines(request, now)[1:]]
        lines.append(f"    answer    {_answer_text(exchange, waiting is not None and waiting == request)}")
    return lines


def _answer_text(exchange: InputExchange, waiting: bool) -> str:
    answer = exchange.answer
    if answer is not None:
        return f"{compact(answer.value)}  by {answer.answered_by or NOBODY} at {when(answer.answered_at)}"
    return "none yet: the task waits for it (wa respond)" if waiting else "none"


def exchanges_to_json(record: TaskRecord) -> dict[str, Any]:
    """The keys `wa task get --json` adds for them: inputs (request, answer or null, asked_at, attempt),
    approval (or null) and approval_required."""
    return {
        "inputs": [
            {
                "request": request_to_json(e.request),
                "answer": answer_to_json(e.answer) if e.answer is not None else None,
                "asked_at": iso(e.asked_at),
                "attempt": e.attempt,
            }
            for e in record.inputs
        ],
        "approval": approval_to_json(record.approval) if record.approval is not None else None,
        "approval_required": record.approval_required,
    }


def waiting_outcome(record: TaskRecord) -> str:
    """The RESULT cell of `wa task list` for a task that waits on a person ("" for any other)."""
    request = record.input_request
    if request is not None:
        return f"asks: {request.prompt or request.request_id}"
    if record.status is TaskStatus.APPROVAL_REQUIRED:
        return "waits for approval"
    return ""
