"""The orchestrator's domain objects as JSON-ready dicts, for the dashboard's pages and its event stream.

Only plain values leave here: times as seconds since the epoch (floats), statuses and states by name.
Free text the workers wrote (errors, progress messages, outputs) is cut to a bounded length, so one task
cannot make a page or an event arbitrarily large.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from worker_abstraction.types import (
    MAX_TRACEBACK,
    Attempt,
    DeadLetter,
    LimitedQueue,
    TaskRecord,
    TaskStatus,
    TaskUpdate,
    WorkerHealth,
    latest_worker,
)

MAX_TEXT = 2_000  # characters of one error, message or output shown
JSON = dict[str, Any]
NameOf = Callable[[str], str]  # a worker's name from its id ("" when unknown)


def _no_names(worker_id: str) -> str:
    return ""


def text(value: str, limit: int = MAX_TEXT) -> str:
    """`value`, cut to `limit` characters with a mark where it was cut."""
    return value if len(value) <= limit else value[:limit] + f"… ({len(value) - limit} more characters)"


def seconds(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


def params_text(params: Mapping[str, Any]) -> str:
    """The arguments as compact JSON (cut): shown, never parsed back."""
    try:
        return text(json.dumps(params, sort_keys=True, default=repr, separators=(",", ":")), 500)
    except (TypeError, ValueError):  # keys that are not strings: show what there is
        return text(repr(params), 500)


def worker_view(health: WorkerHealth) -> JSON:
    worker = health.worker
    report = worker.load_report
    return {
        "worker_id": worker.worker_id,
        "name": worker.name,
        "address": worker.address,
        "version": worker.version,
        "tags": list(worker.tags),
        "state": health.state.name,
        "state_reason": text(health.state_reason, 300),
        "circuit": health.circuit,
        "in_flight": health.in_flight,
        "load": worker.current_load,
        "slots": worker.max_concurrent_tasks,
        "free_slots": report.free_slots if report is not None else None,
        "cpu": report.cpu_utilization if report is not None else None,
        "capabilities": [c.name for c in worker.capabilities],
        # Each as `name@version` (every capability has one: 1.0.0 when it declares none), deprecated marked.
        "capability_versions": [
            f"{c.name}@{c.semver}" + (" (deprecated)" if c.deprecated else "") for c in worker.capabilities
        ],
        "last_heartbeat": seconds(worker.last_heartbeat),
    }


def queue_view(depths: Mapping[str, Mapping[int, int]]) -> list[JSON]:
    return [
        {"capability": capability, "priority": priority, "waiting": waiting}
        for capability, by_priority in sorted(depths.items())
        for priority, waiting in sorted(by_priority.items(), reverse=True)
    ]


def limited_view(held: LimitedQueue) -> JSON:
    """Waiting tasks a capability's limit holds back, and when the first may start (None: when one ends)."""
    return {
        "capability": held.capability,
        "waiting": held.waiting,
        "starts_in_seconds": held.starts_in_seconds,
        "limit": text(held.limit, 200),
    }


def attempt_view(attempt: Attempt, name_of: NameOf = _no_names) -> JSON:
    return {
        "number": attempt.number,
        "worker_id": attempt.worker_id,
        "worker_name": name_of(attempt.worker_id),
        "started_at": seconds(attempt.started_at),
        "ended_at": seconds(attempt.ended_at),
        "status": attempt.status.name,
        "error": text(attempt.error_message),
    }


def update_view(update: TaskUpdate, name_of: NameOf = _no_names) -> JSON:
    failure = update.failure
    return {
        "status": update.status.name,
        "attempt": update.attempt,
        "sequence": update.sequence,
        "worker_id": update.worker_id,
        "worker_name": name_of(update.worker_id),
        "progress": update.progress,
        "message": text(update.progress_message, 500),
        "output": text(update.output_json),
        "error": text(update.error_message),
        "failure": None
        if failure is None
        else {
            "type": failure.type,
            "origin": failure.origin.name,
            "retryable": failure.retryable,
            "traceback": text(failure.traceback, MAX_TRACEBACK),
        },
        "at": update.timestamp_ns / 1e9 if update.timestamp_ns else None,
    }


def record_view(record: TaskRecord, name_of: NameOf = _no_names) -> JSON:
    worker_id = latest_worker(record)
    return {
        "task_id": record.task_id,
        "capability": record.capability,
        "status": record.status.name,
        "worker_id": worker_id,
        "worker_name": name_of(worker_id),
        "params": params_text(record.params),
        "submitted_at": seconds(record.submitted_at),
        "not_before": seconds(record.not_before),
        "attempts": [attempt_view(a, name_of) for a in record.attempts],
        "last_update": update_view(record.last_update, name_of) if record.last_update is not None else None,
        "dead_lettered": record.dead_lettered,
        "cancel_reason": text(record.cancel_reason, 500),
        "idempotency_key": record.idempotency_key,
        "owner": record.owner,
    }


def row_view(record: TaskRecord, name_of: NameOf = _no_names) -> JSON:
    """A task as one row of a list: the keys the live feed's rows have, read from its record."""
    worker_id = latest_worker(record)
    last = record.last_update
    ended = record.attempts[-1].ended_at if record.attempts else None
    submitted = seconds(record.submitted_at)
    updated = last.timestamp_ns / 1e9 if last is not None and last.timestamp_ns else seconds(ended) or submitted
    latency = None
    if record.status.is_terminal and submitted is not None and updated is not None:
        latency = max(0.0, updated - submitted)
    return {
        "task_id": record.task_id,
        "capability": record.capability,
        "status": record.status.name,
        "worker_id": worker_id,
        "worker_name": name_of(worker_id),
        "attempt": record.attempts[-1].number if record.attempts else 0,
        "progress": 1.0 if record.status is TaskStatus.COMPLETED else (last.progress if last is not None else 0.0),
        "message": text(last.progress_message, 200) if last is not None else "",
        "error": text(record.error_message, 300),
        "submitted_at": submitted,
        "updated_at": updated,
        "latency": latency,
    }


def dead_letter_view(letter: DeadLetter) -> JSON:
    return {
        "task_id": letter.task_id,
        "capability": letter.capability,
        "params": params_text(letter.params),
        "error": text(letter.error_message),
        "attempts": [attempt_view(a) for a in letter.attempts],
    }
