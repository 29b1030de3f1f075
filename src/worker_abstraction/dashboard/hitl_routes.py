"""The dashboard's human-in-the-loop routes: answer a task's question, approve or deny a task, follow its
streamed output, and the inbox of tasks waiting for a person.

POST /api/tasks/{id}/answer    {"value_json": "<JSON text>"} (or {"value": <any JSON>}), and "request_id" to
                               answer that question only: the answer, checked against the question's schema
                               (422 {"error", "problems": [...]}: refused, the task still waits; 409: it waits
                               for no input)
POST /api/tasks/{id}/approve   {"reason": "..."} (optional): the task goes on (409: it waits for no approval)
POST /api/tasks/{id}/deny      {"reason": "..."} (required): the task ends CANCELED with the reason
GET  /api/tasks/{id}/chunks    server-sent events: `chunks` ({"chunks": [...], "dropped": [after, up_to] or
                               null}, its SSE id the number of the latest chunk in it), as the task streams
                               them, from the one after `?after=N` (or the Last-Event-ID a reconnecting
                               EventSource sends); then `end` ({"status", "chunks"}) once the task ended
GET  /api/inbox                the tasks waiting for input or approval, newest first (at most `INBOX_LIMIT`)

Whoever answers or decides is recorded as the principal the dashboard signed in (empty when it checks no
credentials, as the daemon's own calls record it). Only operators may do either (with credentials off,
anyone who can reach the dashboard is one, as for cancel and retry).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from worker_abstraction.dashboard.access import Gate, Visitor, bounded_body
from worker_abstraction.dashboard.actions import ActionRefusedError
from worker_abstraction.dashboard.hitl_views import WAITING, chunk_view, inbox_row
from worker_abstraction.dashboard.views import NameOf, text
from worker_abstraction.errors import InvalidAnswerError, TaskNotFoundError
from worker_abstraction.exchanges import MAX_REQUEST_ID, answer_json
from worker_abstraction.options import MAX_ID_LENGTH
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.daemon.asking import MAX_REASON
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator
from worker_abstraction.types import TaskQuery, TaskUpdate
from worker_abstraction.validation import MAX_ANSWER

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0  # an SSE comment this often keeps proxies from closing an idle stream
MAX_STREAMS = 32  # chunk streams served at once (each open task page of a running task holds one)
BATCH = 256  # chunks per event at most
INBOX_LIMIT = 200
MAX_ANSWER_BODY = 2 * MAX_ANSWER + 1_024  # bytes of an answer's body (its JSON text quoted in a JSON string)
MAX_DECISION_BODY = 8 * MAX_REASON  # bytes of an approval's or a denial's body

Handler = Callable[[Request], Awaitable[Response]]


def routes(
    orchestrator: AsyncOrchestrator, guarded: Callable[[Handler], Handler], gate: Gate, name_of: NameOf
) -> list[Route]:
    """The routes, each behind the dashboard's guard (`guarded`, which also maps errors to statuses). They go
    before the route of `/api/tasks/{id}`, whose path would take theirs."""
    engine = orchestrator.engine
    streams = [0]  # chunk streams being served

    async def answer(request: Request) -> Response:
        task_id, visitor = _task_id(request), gate.visitor(request)
        if not visitor.operator:
            return _not_operator(visitor)
        value_json, value, request_id = _answer_body(await bounded_body(request, MAX_ANSWER_BODY))
        record = await orchestrator.task(task_id)  # (404: unknown)
        try:
            value_json = answer_json(value) if value_json is None else _compact(value_json)
            given = await engine.provide_input(task_id, value_json, request_id=request_id, answered_by=visitor.name)
        except InvalidAnswerError as error:
            return JSONResponse({"error": str(error), "problems": error.problems}, status_code=422)
        except TaskNotFoundError:  # known, but not running here: it waits for nothing
            raise ActionRefusedError(task_id, f"it waits for no input (it is {record.status.name})") from None
        logger.info("task %s answered from the dashboard by %s", task_id, gate.who(request), extra={"task_id": task_id})
        return JSONResponse({"task_id": task_id, "request_id": given.request_id, "answered_by": given.answered_by})

    async def decide(request: Request, approved: bool) -> Response:
        task_id, visitor = _task_id(request), gate.visitor(request)
        if not visitor.operator:
            return _not_operator(visitor)
        reason = _reason(await bounded_body(request, MAX_DECISION_BODY), required=not approved)
        record = await orchestrator.task(task_id)
        try:
            status = await engine.decide(task_id, approved, decided_by=visitor.name, reason=reason)
        except TaskNotFoundError:
            raise ActionRefusedError(task_id, f"it waits for no approval (it is {record.status.name})") from None
        said = "approved" if approved else "denied"
        logger.info("task %s %s from the dashboard by %s", task_id, said, gate.who(request), extra={"task_id": task_id})
        return JSONResponse({"task_id": task_id, "status": status.name})

    async def approve(request: Request) -> Response:
        return await decide(request, True)

    async def deny(request: Request) -> Response:
        return await decide(request, False)

    async def chunks(request: Request) -> Response:
        task_id = _task_id(request)
        after = _after(request)
        handle = await orchestrator.watch(task_id)
        if streams[0] >= MAX_STREAMS:
            return JSONResponse({"error": f"the dashboard streams at most {MAX_STREAMS} outputs at once"}, 503)

        async def counted() -> AsyncIterator[str]:
            streams[0] += 1
            try:
                async for event in chunk_events(handle, after):
                    yield event
            finally:
                streams[0] -= 1

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(counted(), media_type="text/event-stream", headers=headers)

    async def api_inbox(request: Request) -> Response:
        records, more = await engine.task_page(TaskQuery(statuses=WAITING, limit=INBOX_LIMIT))
        return JSONResponse({"tasks": [inbox_row(record, name_of) for record in records], "more": more})

    return [
        Route("/api/inbox", guarded(api_inbox), methods=["GET"]),
        Route("/api/tasks/{task_id:path}/answer", guarded(answer), methods=["POST"]),
        Route("/api/tasks/{task_id:path}/approve", guarded(approve), methods=["POST"]),
        Route("/api/tasks/{task_id:path}/deny", guarded(deny), methods=["POST"]),
        Route("/api/tasks/{task_id:path}/chunks", guarded(chunks), methods=["GET"]),
    ]


async def chunk_events(handle: AsyncTaskHandle, after: int) -> AsyncIterator[str]:
    """The task's chunks after number `after` as server-sent events, as they come, then `end` once it ended.

    What is there when the stream is read goes at once, `BATCH` chunks an event; then each wake-up sends what
    arrived meanwhile. The task's updates are read in place (a listener only says that more arrived), so a
    slow page costs no copy of what it has yet to read.
    """
    changed = asyncio.Event()

    def arrived(position: int, update: TaskUpdate) -> None:
        changed.set()

    handle.subscribe(arrived, after=len(handle.updates))
    position = 0
    try:
        while True:
            changed.clear()
            updates = handle.updates
            batch: list[dict[str, Any]] = []
            dropped: list[int] | None = None
            while position < len(updates) and len(batch) < BATCH:
                chunk = updates[position].chunk
                position += 1
                if chunk is None or chunk.index <= after:
                    continue
                if chunk.index > after + 1 and dropped is None:  # the oldest of a long stream are not kept
                    dropped = [after, chunk.index - 1]
                after = chunk.index
                batch.append(chunk_view(chunk))
            if batch:
                yield _event("chunks", {"chunks": batch, "dropped": dropped}, after)
                continue
            if handle.done():
                yield _event("end", {"status": handle.status.name, "chunks": after}, after)
                return
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    await changed.wait()
            except TimeoutError:
                yield ": keepalive\n\n"
    finally:
        handle.unsubscribe(arrived)


def _event(kind: str, data: Any, last: int) -> str:
    return f"id: {last}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _task_id(request: Request) -> str:
    task_id = str(request.path_params["task_id"])
    if not task_id or len(task_id) > MAX_ID_LENGTH:
        raise TaskNotFoundError(text(task_id, 64), "the orchestrator")
    return task_id


def _not_operator(visitor: Visitor) -> Response:
    """The refusal of an answer or a decision by someone who is not an operator (the gate lets only operators
    in today: this holds should it ever admit others)."""
    return JSONResponse({"error": f"{visitor.name or 'this visitor'} is not an operator"}, status_code=403)


def _after(request: Request) -> int:
    """The number of the last chunk the page has: `?after=N`, or the Last-Event-ID of a reconnection."""
    found = 0
    for value in (request.query_params.get("after", ""), request.headers.get("last-event-id", "")):
        value = value.strip()
        if not value:
            continue
        if not (value.isascii() and value.isdigit() and len(value) <= 12):
            raise ValueError(f"after must be a chunk's number, got {text(value, 32)!r}")
        found = max(found, int(value))
    return found


def _document(body: bytes, shape: str) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise ValueError(f"the body must be {shape}") from None
    if not isinstance(document, dict):
        raise ValueError(f"the body must be {shape}")
    return document


def _answer_body(body: bytes) -> tuple[str | None, Any, str]:
    """(value_json, value, request_id) of an answer's body; exactly one of the first two is given.

    Raises:
        ValueError: a body of another shape.
    """
    shape = '{"value_json": "<JSON text>"} or {"value": <JSON>}, with "request_id" if need be'
    document = _document(body, shape)
    if set(document) - {"value_json", "value", "request_id"} or ("value" in document) == ("value_json" in document):
        raise ValueError(f"the body must be {shape}")
    value_json = document.get("value_json")
    if value_json is not None and not isinstance(value_json, str):
        raise ValueError('"value_json" must be the answer as JSON text (a string)')
    request_id = document.get("request_id", "")
    if not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID:
        raise ValueError(f'"request_id" must be a string of at most {MAX_REQUEST_ID} characters')
    return value_json, document.get("value"), request_id


def _compact(value_json: str) -> str:
    """An answer's JSON text as the record keeps it (compact); as it came when it is no JSON, for the schema
    check to say why.

    Raises:
        InvalidAnswerError: JSON that is no JSON value (NaN, Infinity).
    """
    try:
        value = json.loads(value_json)
    except (ValueError, RecursionError):
        return value_json
    return answer_json(value)


def _reason(body: bytes, *, required: bool) -> str:
    """The `reason` of an approval's or a denial's body (required for a denial).

    Raises:
        ValueError: a body of another shape, a reason too long, or none where one is required.
    """
    document = _document(body, '{"reason": "..."}')
    reason = document.get("reason", "")
    if set(document) - {"reason"} or not isinstance(reason, str):
        raise ValueError('the body must be {"reason": "..."}')
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise ValueError(f"the reason may be at most {MAX_REASON} characters, got {len(reason):,}")
    if required and not reason:
        raise ValueError("a denial needs a reason")
    return reason
