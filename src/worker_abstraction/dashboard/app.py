"""The dashboard's routes: its pages, their JSON API and the event stream, over an AsyncOrchestrator in this process.

GET  /, /tasks/{id}, /workers/{id}, the page (one script renders each address; the login form, with 401,
     /workflows, /workflows/{id},   when credentials are needed)
     /schedules, /schedules/{name},
     /inbox
GET  ...?token=T, POST /login       sign in: sets the HttpOnly cookie and goes back to the page; POST /logout
GET  /api/me                        who is looking: credentials checked or not, the name, operator or not
GET  /api/overview                  workers, queue depths, dead letters, throughput and latency series
GET  /api/tasks                     the latest tasks (the live list), newest first; with any of the filters
                                    of `queries.py`, a page of every task the daemon stores that match
GET  /api/tasks/{id}                one task: its record, every attempt, its latest updates but chunks, its
                                    questions and answers, its approval (404: unknown)
POST /api/tasks/{id}/cancel         cancel it (409 once finished)
POST /api/tasks/{id}/retry          submit a FAILED or CANCELED task again as a new task (see `actions.py`)
GET  /api/workers/{id}              one worker as the daemon sees it, and its latest tasks (404: unknown)
GET  /api/dead-letters              the dead letters
POST /api/dead-letters/{id}/requeue submit it again (a new task id)
POST /api/dead-letters/purge        drop the ones named in {"task_ids": [...]}, or all
GET  /api/events                    server-sent events: `snapshot`, then `task`, `overview`, `reset`
GET  /api/workflows, /api/workflows/{id}     the workflow runs; one run with its graph (`workflow_routes.py`)
POST /api/workflows/{id}/cancel, .../rerun  cancel a run; run an ended one again from a step
GET  /api/schedules, /api/schedules/{name}   the schedules; one with its next occurrences and recent runs
POST /api/schedules/{name}/pause, .../resume, .../trigger   (see `schedule_routes.py`)
GET  /api/inbox, /api/tasks/{id}/chunks      the tasks waiting for a person; a task's streamed output, live
POST /api/tasks/{id}/answer, .../approve, .../deny   answer its question; approve or deny it (`hitl_routes.py`)
GET  /.well-known/agent-card.json, POST /a2a, ...   the team as an A2A agent (`interop/a2a_routes.py`)

Every POST needs the `X-WA-Dashboard` header (see `access.py`).
"""

from __future__ import annotations

import html
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

from worker_abstraction.dashboard import (
    actions,
    hitl_routes,
    hitl_views,
    queries,
    schedule_routes,
    views,
    workflow_routes,
)
from worker_abstraction.dashboard.access import COOKIE, Gate, bounded_body
from worker_abstraction.dashboard.feed import CLOSED, Event, LiveFeed, TooManyClientsError
from worker_abstraction.dashboard.names import WorkerNames
from worker_abstraction.errors import (
    InvalidParametersError,
    NoWorkerError,
    QueueFullError,
    ScheduleNotFoundError,
    TaskNotFoundError,
    WorkerAbstractionError,
)
from worker_abstraction.interop.a2a_routes import a2a_routes
from worker_abstraction.options import MAX_ID_LENGTH
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator
from worker_abstraction.types import TaskQuery, TaskStatus

KEEPALIVE_SECONDS = 15.0  # an SSE comment this often keeps proxies from closing an idle stream
MAX_BODY = 64 * 1024  # bytes of a POST body read
MAX_UPDATES = 500  # of one task's updates shown (the latest)
WORKER_TASKS = 50  # of a worker's tasks its page lists (the latest; the task list filtered by it has them all)
MAX_NEXT = 2_048  # characters of the page address a sign-in goes back to
SERIES_SECONDS = 300

Handler = Callable[[Request], Awaitable[Response]]


def static_dir() -> str:
    return str(resources.files("worker_abstraction.dashboard") / "static")


def _page(name: str) -> str:
    return (resources.files("worker_abstraction.dashboard") / "static" / name).read_text(encoding="utf-8")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _login_page(status: int, back_to: str = "/") -> HTMLResponse:
    """The sign-in form, which goes back to `back_to` (a page of this dashboard) once signed in."""
    page = _page("login.html").replace('name="next" value="/"', f'name="next" value="{html.escape(_back_to(back_to))}"')
    return HTMLResponse(page, status_code=status)


def _back_to(value: str) -> str:
    """A page of this dashboard to go back to after signing in: a path on this server, else `/`."""
    safe = value.startswith("/") and not value.startswith("//") and "\\" not in value and value.isprintable()
    return value if safe and len(value) <= MAX_NEXT else "/"


async def overview(orchestrator: AsyncOrchestrator, feed: LiveFeed) -> views.JSON:
    """What the page's top half shows: workers, queue, dead letters and the charts' series."""
    health = await orchestrator.worker_health()
    letters = await orchestrator.dead_letters()
    return {
        "workers": [views.worker_view(h) for h in sorted(health, key=lambda h: h.worker.name or h.worker.worker_id)],
        "queue": views.queue_view(await orchestrator.queue_depths()),
        "limited": [views.limited_view(held) for held in await orchestrator.limited_queues()],
        "dead_letters": [views.dead_letter_view(d) for d in letters[-200:]],
        "dead_letter_count": len(letters),
        "series": feed.throughput.series(time.time(), SERIES_SECONDS),
        "clients": feed.clients,
        "at": time.time(),
    }


def build_app(
    orchestrator: AsyncOrchestrator, feed: LiveFeed, gate: Gate, names: WorkerNames | None = None
) -> Starlette:
    """The dashboard as an ASGI app (serve it with uvicorn; `DashboardServer` does)."""
    name_of = (names or WorkerNames(orchestrator.engine.directory)).name

    def guarded(handler: Handler) -> Handler:
        async def checked(request: Request) -> Response:
            verdict = gate.check(request)
            if verdict.status:
                if not request.url.path.startswith("/api/") and verdict.status == 401:
                    return _login_page(401, request.url.path)
                return _error(verdict.status, verdict.reason)
            try:
                return await handler(request)
            except (TaskNotFoundError, ScheduleNotFoundError) as error:
                return _error(404, str(error))
            except (InvalidParametersError, ValueError) as error:
                return _error(400, str(error))
            except (QueueFullError, NoWorkerError) as error:
                return _error(503, str(error))
            except WorkerAbstractionError as error:  # ActionRefusedError among them: not in this state
                return _error(409, str(error))

        return checked

    async def page(request: Request) -> Response:
        return HTMLResponse(_page("index.html"), headers={"Cache-Control": "no-store"})

    guarded_page = guarded(page)

    async def pages(request: Request) -> Response:
        token = request.query_params.get("token")
        if token is not None:  # sign in from a link; the token does not stay in the address bar
            return _signed_in(token, request.url.path)
        return await guarded_page(request)

    def _signed_in(token: str, back_to: str) -> Response:
        verdict = gate.check_token(token)
        if verdict.status:
            return _login_page(verdict.status, back_to)
        response = RedirectResponse(_back_to(back_to), status_code=303)
        if not gate.open:
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=gate.secure_cookie, path="/")
        return response

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return _login_page(200)
        try:
            body = await bounded_body(request, MAX_BODY)
        except ValueError as error:
            return _error(400, str(error))
        form = parse_qs(body.decode("utf-8", "replace"))
        return _signed_in(form.get("token", [""])[0].strip(), form.get("next", ["/"])[0])

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def api_me(request: Request) -> Response:
        visitor = gate.visitor(request)
        return JSONResponse({"auth": visitor.auth, "name": visitor.name, "operator": visitor.operator})

    async def api_overview(request: Request) -> Response:
        return JSONResponse(await overview(orchestrator, feed))

    async def api_tasks(request: Request) -> Response:
        params = {name: request.query_params.getlist(name) for name in request.query_params}
        if not queries.is_query(params):
            return JSONResponse({"tasks": feed.rows()})
        query = queries.task_query(params)
        records, more = await orchestrator.engine.task_page(query)
        rows = [views.row_view(record, name_of) for record in records]
        return JSONResponse({"tasks": rows, "more": more, "offset": query.offset, "limit": query.limit})

    async def api_task(request: Request) -> Response:
        task_id = _task_id(request)
        record = await orchestrator.task(task_id)
        handle = await orchestrator.watch(task_id)
        found = views.record_view(record, name_of)
        shown, total = hitl_views.state_updates(handle.updates, MAX_UPDATES)
        found["updates"] = [{**views.update_view(u, name_of), "note": hitl_views.exchange_note(u)} for u in shown]
        found["updates_total"] = total
        found.update(hitl_views.exchanges_view(record))
        found["chunks"] = hitl_views.chunk_count(handle.updates)
        operator = gate.visitor(request).operator
        found["may"] = {
            "cancel": operator and record.status in actions.CANCELABLE,
            "retry": operator and record.status in actions.RETRYABLE,
            "answer": operator and record.input_request is not None,
            "approve": operator and record.status is TaskStatus.APPROVAL_REQUIRED,
            "deny": operator and record.status is TaskStatus.APPROVAL_REQUIRED,
        }
        return JSONResponse(found)

    async def cancel(request: Request) -> Response:
        status = await actions.cancel(orchestrator, _task_id(request), by=gate.who(request))
        return JSONResponse({"status": status.name})

    async def retry(request: Request) -> Response:
        handle = await actions.retry(orchestrator, _task_id(request), by=gate.who(request))
        return JSONResponse({"task_id": handle.task_id, "status": handle.status.name})

    async def api_worker(request: Request) -> Response:
        worker_id = str(request.path_params["worker_id"])
        if not worker_id or len(worker_id) > MAX_ID_LENGTH:
            return _error(404, f"no worker {views.text(worker_id, 64)!r} is known to this orchestrator")
        live = [h for h in await orchestrator.worker_health() if h.worker.worker_id == worker_id]
        records, more = await orchestrator.engine.task_page(TaskQuery(worker_id=worker_id, limit=WORKER_TASKS))
        if not live and not records and not name_of(worker_id):
            return _error(404, f"no worker {views.text(worker_id, 64)!r} is known to this orchestrator")
        return JSONResponse(
            {
                "worker_id": worker_id,
                "name": name_of(worker_id),
                "live": bool(live),
                "worker": views.worker_view(live[0]) if live else None,
                "tasks": [views.row_view(record, name_of) for record in records],
                "more": more,
            }
        )

    async def api_dead_letters(request: Request) -> Response:
        return JSONResponse({"dead_letters": [views.dead_letter_view(d) for d in await orchestrator.dead_letters()]})

    async def requeue(request: Request) -> Response:
        handle = await orchestrator.requeue_dead_letter(_task_id(request))
        return JSONResponse({"task_id": handle.task_id, "status": handle.status.name})

    async def purge(request: Request) -> Response:
        body = await bounded_body(request, MAX_BODY)
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
        Route("/", pages, methods=["GET"]),
        Route("/tasks/{task_id:path}", pages, methods=["GET"]),
        Route("/workers/{worker_id:path}", pages, methods=["GET"]),
        Route("/workflows", pages, methods=["GET"]),
        Route("/workflows/{workflow_id:path}", pages, methods=["GET"]),
        Route("/schedules", pages, methods=["GET"]),
        Route("/schedules/{name:path}", pages, methods=["GET"]),
        Route("/inbox", pages, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/me", guarded(api_me), methods=["GET"]),
        Route("/api/overview", guarded(api_overview), methods=["GET"]),
        Route("/api/tasks", guarded(api_tasks), methods=["GET"]),
        Route("/api/tasks/{task_id:path}/cancel", guarded(cancel), methods=["POST"]),
        Route("/api/tasks/{task_id:path}/retry", guarded(retry), methods=["POST"]),
        *hitl_routes.routes(orchestrator, guarded, gate, name_of),
        Route("/api/tasks/{task_id:path}", guarded(api_task), methods=["GET"]),
        Route("/api/workers/{worker_id:path}", guarded(api_worker), methods=["GET"]),
        Route("/api/dead-letters", guarded(api_dead_letters), methods=["GET"]),
        Route("/api/dead-letters/purge", guarded(purge), methods=["POST"]),
        Route("/api/dead-letters/{task_id:path}/requeue", guarded(requeue), methods=["POST"]),
        Route("/api/events", guarded(events), methods=["GET"]),
        *workflow_routes.routes(orchestrator, guarded, gate),
        *schedule_routes.routes(orchestrator, guarded, gate),
        *a2a_routes(orchestrator, gate.auth),  # the team as an A2A agent (`interop.a2a_routes`)
        Mount("/static", StaticFiles(directory=static_dir()), name="static"),
    ]
    return Starlette(routes=routes)


def _task_id(request: Request) -> str:
    task_id = str(request.path_params["task_id"])
    if not task_id or len(task_id) > MAX_ID_LENGTH:
        raise TaskNotFoundError(views.text(task_id, 64), "the orchestrator")
    return task_id


def _sse(event: Event) -> str:
    data: Any = event.data
    return f"event: {event.kind}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"
