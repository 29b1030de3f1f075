"""Task listings as the contract carries them: a TaskQuery as a ListTasksRequest, and back.

The page travels as a token (the offset, in decimal): `next_page_token` of one answer asks for the next page.
"""

from __future__ import annotations

from datetime import UTC

from worker_abstraction._convert import bounds
from worker_abstraction._convert.workers import set_timestamp
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.codec import ascii_decimal, short
from worker_abstraction.errors import InvalidParametersError
from worker_abstraction.types import MAX_FILTER_LENGTH, TaskQuery, TaskStatus

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
    # Numbers, statuses and instants: the contract's one table (statuses known, limit 0..1000, instants valid).
    problems = bounds.problems(request)
    token = request.page_token
    offset = ascii_decimal(token, max_digits=_MAX_TOKEN_DIGITS) if token else 0
    if offset is None:  # (ASCII digits only: int() would also read "١٢" or " 12")
        problems.append(f"page_token {short(token)} is not one this daemon gave out; send next_page_token as given")
    for name in ("capability", "worker_id", "task_id_prefix"):
        if len(getattr(request, name)) > MAX_FILTER_LENGTH:
            problems.append(f"{name} may be at most {MAX_FILTER_LENGTH} characters")
    if problems:
        raise InvalidParametersError(problems)
    return TaskQuery(  # (checks the page's size and that since is not after until)
        statuses=tuple(TaskStatus(s) for s in request.statuses),
        capability=request.capability,
        limit=request.limit or 100,
        offset=offset or 0,
        worker_id=request.worker_id,
        since=request.since.ToDatetime(UTC) if request.HasField("since") else None,
        until=request.until.ToDatetime(UTC) if request.HasField("until") else None,
        task_id_prefix=request.task_id_prefix,
    )
