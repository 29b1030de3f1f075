"""The task list's filters as a URL's query (`/api/tasks?status=failed&worker=ID&since=...`), read and checked.

    status      one or more of pending, running, completed, failed, canceled (repeated or comma-separated)
    capability  its capability
    worker      the id of the worker its latest attempt went to
    since       submitted at or after: seconds since the epoch, or an ISO 8601 instant (without offset: UTC)
    until       submitted before (the same forms)
    q           a task id, or the start of one
    limit       rows per page, 1..200 (default 50)
    offset      rows skipped, newest first, 0..10000

Anything else, or a value out of its range, is refused (HTTP 400) with every problem named, quoting at most
a short prefix of what was sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from worker_abstraction.codec import short
from worker_abstraction.types import MAX_FILTER_LENGTH, TaskQuery, TaskStatus

FILTERS = ("status", "capability", "worker", "since", "until", "q", "limit", "offset")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 10_000  # a deeper page costs the daemon a read of as many records: narrow the filters instead
_STATUS_NAMES = {s.name.lower(): s for s in TaskStatus if s is not TaskStatus.UNKNOWN}
_LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z


class QueryError(ValueError):
    """A query the task list cannot run; its message names every problem."""


def is_query(params: Mapping[str, Sequence[str]]) -> bool:
    """Whether the request asks for a filtered page of the store rather than the live list."""
    return bool(params)


def task_query(params: Mapping[str, Sequence[str]]) -> TaskQuery:
    """The TaskQuery the parameters (each name with its values) ask for.

    Raises:
        QueryError: unknown parameters, or values out of range (every one named).
    """
    problems: list[str] = []
    unknown = sorted(set(params) - set(FILTERS))
    if unknown:
        problems.append(f"unknown parameters {', '.join(short(n) for n in unknown[:5])}; known: {', '.join(FILTERS)}")
    for name, values in params.items():
        if name in FILTERS and name != "status" and len(values) > 1:
            problems.append(f"{name} may be given once")

    def one(name: str) -> str:
        values = params.get(name) or [""]
        return values[0].strip()

    statuses: list[TaskStatus] = []
    for value in params.get("status", []):
        for word in filter(None, (w.strip().lower() for w in value.split(","))):
            if word in _STATUS_NAMES:
                statuses.append(_STATUS_NAMES[word])
            else:
                problems.append(f"status {short(word)} is none of {', '.join(_STATUS_NAMES)}")
    for name in ("capability", "worker", "q"):
        if len(one(name)) > MAX_FILTER_LENGTH:
            problems.append(f"{name} may be at most {MAX_FILTER_LENGTH} characters, got {len(one(name))}")
    since, until = _instant("since", one("since"), problems), _instant("until", one("until"), problems)
    if since is not None and until is not None and since > until:
        problems.append(f"since ({since.isoformat()}) is after until ({until.isoformat()})")
    limit = _integer("limit", one("limit"), 1, MAX_LIMIT, DEFAULT_LIMIT, problems)
    offset = _integer("offset", one("offset"), 0, MAX_OFFSET, 0, problems)
    if problems:
        raise QueryError("; ".join(problems))
    return TaskQuery(
        statuses=tuple(dict.fromkeys(statuses)),
        capability=one("capability"),
        worker_id=one("worker"),
        since=since,
        until=until,
        task_id_prefix=one("q"),
        limit=limit,
        offset=offset,
    )


def _instant(name: str, text: str, problems: list[str]) -> datetime | None:
    if not text:
        return None
    # Seconds as ASCII digits with at most one point: float() also takes other scripts' digits, "1_0", spaces.
    plain = text.isascii() and text.replace(".", "", 1).isdigit()
    try:
        seconds = float(text) if plain else math.nan
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        if 0 <= seconds <= _LAST_SECOND:
            return datetime.fromtimestamp(seconds, UTC)
        problems.append(f"{name} must lie in years 1970..9999, got {short(text)}")
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        problems.append(f"{name} must be seconds since the epoch or an ISO 8601 instant, got {short(text)}")
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _integer(name: str, text: str, low: int, high: int, default: int, problems: list[str]) -> int:
    if not text:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or not low <= int(text) <= high:
        problems.append(f"{name} must be a whole number in {low}..{high}, got {short(text)}")
        return default
    return int(text)
