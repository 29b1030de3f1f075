"""The dashboard's routes: one page, its JSON API and its event stream, over an AsyncOrchestrator in this process.

GET  /                              the page (the login form, with 401, when credentials are needed)
GET  /?token=T, POST /login         sign in: sets the HttpOnly cookie; POST /logout signs out
GET  /api/overview                  workers, queue depths, dead letters, throughput and latency series
GET  /api/tasks                     the latest tasks (the live list), newest first
GET  /api/tasks/{id}                one task: its record, every attempt, every update (404: unknown)
GET  /api/dead-letters              the dead letters
POST /api/dead-letters/{id}/requeue submit it again (a new task id)
POST /api/dead-letters/purge        drop the ones named in {"task_ids": [...]}, or all
GET  /api/events                    server-sent events: `snapshot`, then `task`, `overview`, `reset`
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from worker_abstraction.dashboard import views
from worker_abstraction.dashboard.access import COOKIE, Gate
from worker_abstraction.dashboard.feed import CLOSED, Event, LiveFeed, TooManyClientsError
from worker_abstraction.errors import (
    InvalidParametersError,
    NoWorkerError,
    QueueFullError,
    TaskNotFoundError,
    WorkerAbstractionError,
)
from worker_abstraction.options import MAX_ID_LENGTH
from worker_abstraction.orchestrator.client import AsyncOrchestrator

KEEPALIVE_SECONDS = 15.0  # an SSE comment this often keeps proxies from closing an idle stream
MAX_BODY = 64 * 1024  # bytes of a POST body read
MAX_UPDATES = 500  # of one task's updates shown (the latest)
SERIES_SECONDS = 300

Handler = Callable[[Request], Awaitable[Response]]


def static_dir() -> str:
    return str(resources.files("worker_abstraction.dashboard") / "static")


def _page(name: str) -> str:
    return (resources.files("worker_abstraction.dashboard") / "static" / name).read_text(encoding="utf-8")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def overview(orchestrator: AsyncOrchestrator, feed: LiveFeed) -> views.JSON:
    """What the page's top half shows: workers, queue, dead letters and the charts' series."""
    health = await orchestrator.worker_health()
    letters = await orchestrator.dead_letters()
    return {
        "workers": [views.worker_view(h) for h in sorted(health, key=lambda h: h.worker.name or h.worker.worker_id)],
        "queue": views.queue_view(await orchestrator.queue_depths()),
        "dead_letters": [views.dead_letter_view(d) for d in letters[-200:]],
        "dead_letter_count": len(letters),
        "series": feed.throughput.series(time.time(), SERIES_SECONDS),
        "clients": feed.clients,
        "at": time.time(),
    }


def build_app(orchestrator: AsyncOrchestrator, feed: LiveFeed, gate: Gate) -> Starlette:
    """The dashboard as an ASGI app (serve it with uvicorn; `DashboardServer` does)."""

    def guarded(handler: Handler) -> Handler:
        async def checked(request: Request) -> Response:
            verdict = gate.check(request)
            if verdict.status:
                if request.url.path == "/" and verdict.status == 401:
                    return HTMLResponse(_page("login.html"), status_code=401)
                return _error(verdict.status, verdict.reason)
            try:
                return await handler(request)
            except TaskNotFoundError as error:
                return _error(404, str(error))
            except (InvalidParametersError, ValueError) as error:
                return _error(400, str(error))
            except (QueueFullError, NoWorkerError) as error:
                return _error(503, str(error))
            except WorkerAbstractionError as error:
                return _error(409, str(error))

        return checked

    async def page(request: Request) -> Response:
        return HTMLResponse(_page("index.html"), headers={"Cache-Control": "no-store"})

    guarded_page = guarded(page)

    async def index(request: Request) -> Response:
        token = request.query_params.get("token")
        if token is not None:  # sign in from a link; the token does not stay in the address bar
            return _signed_in(token)
        return await guarded_page(request)

    def _signed_in(token: str) -> Response:
        verdict = gate.check_token(token)
        if verdict.status:
            return HTMLResponse(_page("login.html"), status_code=verdict.status)
        response = RedirectResponse("/", status_code=303)
        if not gate.open:
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=gate.secure_cookie, path="/")
        return response

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(_page("login.html"))
        try:
            body = await _body(request)
        except ValueError as error:
            return _error(400, str(error))
        token = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        return _signed_in(token.strip())

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def api_overview(request: Request) -> Response:
        return JSONResponse(await overview(orchestrator, feed))

    async def api_tasks(request: Request) -> Response:
        return JSONResponse({"tasks": feed.rows()})

    async def api_task(request: Request) -> Response:
        task_id = _task_id(request)
        record = await orchestrator.task(task_id)
        handle = await orchestrator.watch(task_id)
        found = views.record_view(record)
        found["updates"] = [views.update_view(u) for u in list(handle.updates)[-MAX_UPDATES:]]
        found["updates_total"] = len(handle.updates)
        return JSONResponse(found)

    async def api_dead_letters(request: Request) -> Response:
        return JSONResponse({"dead_letters": [views.dead_letter_view(d) for d in await orchestrator.dead_letters()]})

    async def requeue(request: Request) -> Response:
        handle = await orchestrator.requeue_dead_letter(_task_id(request))
        return JSONResponse({"task_id": handle.task_id, "status": handle.status.name})

    async def purge(request: Request) -> Response:
        body = await _body(request)
        task_ids: list[str] | None = None
        if body.strip():
            try:
                document = json.loads(body)
            except RecursionError:  # nested past the parser's depth: not a request this page sends
                raise ValueError("the body nests too deeply") from None
            if not isinstance(document, dict) or set(document) - {"task_ids"}:
                raise ValueError('the body must be {"task_ids": [...]}, or empty to purge every dead letter')
            named = document.get("task_ids")
            if named is not None:
                if not isinstance(named, list) or not all(isinstance(t, str) for t in named) or len(named) > 10_000:
                    raise ValueError('"task_ids" must be a list of at most 10000 task ids')
                task_ids = named
        if task_ids == []:
            return JSONResponse({"purged": 0})
        return JSONResponse({"purged": await orchestrator.purge_dead_letters(task_ids)})

    async def events(request: Request) -> Response:
        try:
            subscription = feed.subscribe()
        except TooManyClientsError as error:
            return _error(503, str(error))
        try:
            first = await overview(orchestrator, feed)
        except BaseException:
            subscription.close()
            raise

        async def stream() -> AsyncIterator[str]:
            try:
                yield _sse(Event("snapshot", {"tasks": feed.rows(), "overview": first}))
                while True:
                    event = await subscription.next(KEEPALIVE_SECONDS)
                    if event is None:
                        yield ": keepalive\n\n"
                    elif event is CLOSED:
                        return
                    elif event.kind == "reset":
                        yield _sse(Event("snapshot", {"tasks": feed.rows(), "overview": None}))
                    else:
                        yield _sse(event)
            finally:
                subscription.close()

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/overview", guarded(api_overview), methods=["GET"]),
        Route("/api/tasks", guarded(api_tasks), methods=["GET"]),
        Route("/api/tasks/{task_id:path}", guarded(api_task), methods=["GET"]),
        Route("/api/dead-letters", guarded(api_dead_letters), methods=["GET"]),
        Route("/api/dead-letters/purge", guarded(purge), methods=["POST"]),
        Route("/api/dead-letters/{task_id:path}/requeue", guarded(requeue), methods=["POST"]),
        Route("/api/events", guarded(events), methods=["GET"]),
        Mount("/static", StaticFiles(directory=static_dir()), name="static"),
    ]
    return Starlette(routes=routes)


def _task_id(request: Request) -> str:
    task_id = str(request.path_params["task_id"])
    if not task_id or len(task_id) > MAX_ID_LENGTH:
        raise TaskNotFoundError(views.text(task_id, 64), "the orchestrator")
    return task_id


async def _body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ValueError(f"the request body may be at most {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _sse(event: Event) -> str:
    data: Any = event.data
    return f"event: {event.kind}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"
