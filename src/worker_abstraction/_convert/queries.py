"""Task listings as the contract carries them: a TaskQuery as a ListTasksRequest, and back.

The page travels as a token (the offset, in decimal): `next_page_token` of one answer asks for the next page.
"""

from __future__ import annotations

from datetime import UTC

from worker_abstraction._convert.workers import set_timestamp
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.codec import short
from worker_abstraction.errors import InvalidParametersError
from worker_abstraction.types import MAX_FILTER_LENGTH, TaskQuery, TaskStatus

_KNOWN_STATUSES = frozenset(int(s) for s in TaskStatus)
_MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a Timestamp may hold
_MAX_TOKEN_DIGITS = 9


def list_request_to_pb(query: TaskQuery) -> pb.ListTasksRequest:
    """The request for `query`'s page (its `owner` is not sent: the daemon sets it from the credentials)."""
    request = pb.ListTasksRequest(
        statuses=[int(s) for s in query.statuses],  # type: ignore[misc]  # TaskStatus mirrors the proto enum
        capability=query.capability,
        limit=query.limit,
        page_token=str(query.offset) if query.offset else "",
        worker_id=query.worker_id,
        task_id_prefix=query.task_id_prefix,
    )
    if query.since is not None:
        set_timestamp(request.since, query.since)
    if query.until is not None:
        set_timestamp(request.until, query.until)
    return request


def query_from_list_request(request: pb.ListTasksRequest) -> TaskQuery:
    """The query a request asks for.

    Raises:
        InvalidParametersError: every problem of the request (a token this daemon never gave out, unknown
            statuses, names too long, instants out of range or in the wrong order, a page out of range).
    """
    problems = []
    token = request.page_token
    if token and not (token.isdigit() and len(token) <= _MAX_TOKEN_DIGITS):
        problems.append(f"page_token {short(token)} is not one this daemon gave out")
    unknown = [s for s in request.statuses if s not in _KNOWN_STATUSES]
    if unknown:
        problems.append(f"unknown statuses {unknown[:5]}")
    for name in ("capability", "worker_id", "task_id_prefix"):
        if len(getattr(request, name)) > MAX_FILTER_LENGTH:
            problems.append(f"{name} may be at most {MAX_FILTER_LENGTH} characters")
    for name in ("since", "until"):
        stamp = getattr(request, name)
        if request.HasField(name) and not (
            0 <= stamp.seconds <= _MAX_TIMESTAMP_SECONDS and 0 <= stamp.nanos < 1_000_000_000
        ):
            problems.append(f"{name} must lie in years 1970..9999, got seconds={stamp.seconds} nanos={stamp.nanos}")
    if problems:
        raise InvalidParametersError(problems)
    return TaskQuery(  # (checks the page's size and that since is not after until)
        statuses=tuple(TaskStatus(s) for s in request.statuses),
        capability=request.capability,
        limit=request.limit or 100,
        offset=int(token) if token else 0,
        worker_id=request.worker_id,
        since=request.since.ToDatetime(UTC) if request.HasField("since") else None,
        until=request.until.ToDatetime(UTC) if request.HasField("until") else None,
        task_id_prefix=request.task_id_prefix,
    )
