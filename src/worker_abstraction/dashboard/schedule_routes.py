"""The dashboard's schedule routes: the schedules, one with its next occurrences and recent runs, and what an
operator may do to one.

GET  /api/schedules                  every schedule, by name (at most `MAX_LISTED`), with its latest run's
                                     status (read for at most `STATUS_READS` of them)
GET  /api/schedules/{name}           one schedule: every fact, its next `NEXT_SHOWN` occurrences, and its
                                     latest `RECENT_RUNS` runs (the tasks whose id starts with `NAME@`), newest
                                     first (404: unknown)
POST /api/schedules/{name}/pause     it fires nothing until resumed
POST /api/schedules/{name}/resume    {"run_now": false}: it fires again from now on (what passed meanwhile
                                     never runs; with run_now, one run now)
POST /api/schedules/{name}/trigger   one run now, whatever its timing: {"task_id", "status"}

A schedule's runs are tasks, so its pages follow them through the task events of the live feed (a run's id
starts with the schedule's name and `@`); the page reads the schedule again on each of them, and once when
its next occurrence passes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker_abstraction.dashboard import views
from worker_abstraction.dashboard.access import Gate, bounded_body
from worker_abstraction.dashboard.schedule_views import next_occurrences, schedule_row, schedule_view
from worker_abstraction.errors import ScheduleNotFoundError, WorkerAbstractionError
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator
from worker_abstraction.schedules.model import NAME, ScheduleInfo
from worker_abstraction.types import TaskQuery

logger = logging.getLogger(__name__)

MAX_LISTED = 500  # schedules the list shows
STATUS_READS = 100  # latest runs' statuses read per list request
RECENT_RUNS = 20  # runs a schedule's page lists (the task list, filtered by the `NAME@` prefix, has them all)
MAX_BODY = 1_024  # bytes of a resume's body

Handler = Callable[[Request], Awaitable[Response]]


async def last_status(orchestrator: AsyncOrchestrator, info: ScheduleInfo) -> str | None:
    """The status of the schedule's latest run (None: it has none, or the orchestrator forgot it)."""
    if not info.state.last_run:
        return None
    try:
        return (await orchestrator.task(info.state.last_run)).status.name
    except WorkerAbstractionError:
        return None


def routes(orchestrator: AsyncOrchestrator, guarded: Callable[[Handler], Handler], gate: Gate) -> list[Route]:
    """The schedule routes, each behind the dashboard's guard (`guarded`, which also maps errors to statuses)."""

    async def api_schedules(request: Request) -> Response:
        infos = await orchestrator.schedules()
        shown = infos[:MAX_LISTED]
        rows = []
        for index, info in enumerate(shown):
            status = await last_status(orchestrator, info) if index < STATUS_READS else None
            rows.append(schedule_row(info, status))
        return JSONResponse({"schedules": rows, "total": len(infos)})

    async def api_schedule(request: Request) -> Response:
        info = await orchestrator.schedule(_name(request))
        query = TaskQuery(task_id_prefix=f"{info.name}@", limit=RECENT_RUNS)
        records, more = await orchestrator.engine.task_page(query)
        operator = gate.visitor(request).operator
        paused = info.schedule.paused
        may = {"pause": operator and not paused, "resume": operator and paused, "trigger": operator}
        runs = [views.row_view(record) for record in records]
        upcoming = next_occurrences(info)
        found = schedule_view(info, await last_status(orchestrator, info), upcoming, runs, more, may)
        return JSONResponse(found)

    async def pause(request: Request) -> Response:
        info = await orchestrator.pause_schedule(_name(request))
        logger.info("schedule %s paused from the dashboard by %s", info.name, gate.who(request))
        return JSONResponse(schedule_row(info, await last_status(orchestrator, info)))

    async def resume(request: Request) -> Response:
        name = _name(request)
        run_now = _run_now(await bounded_body(request, MAX_BODY))
        info = await orchestrator.resume_schedule(name, run_now=run_now)
        logger.info("schedule %s resumed from the dashboard by %s (run now: %s)", name, gate.who(request), run_now)
        return JSONResponse(schedule_row(info, await last_status(orchestrator, info)))

    async def trigger(request: Request) -> Response:
        handle = await orchestrator.trigger_schedule(_name(request))
        logger.info(
            "schedule %s triggered from the dashboard by %s: %s",
            _name(request),
            gate.who(request),
            handle.task_id,
            extra={"task_id": handle.task_id},
        )
        return JSONResponse({"task_id": handle.task_id, "status": handle.status.name})

    return [
        Route("/api/schedules", guarded(api_schedules), methods=["GET"]),
        Route("/api/schedules/{name:path}/pause", guarded(pause), methods=["POST"]),
        Route("/api/schedules/{name:path}/resume", guarded(resume), methods=["POST"]),
        Route("/api/schedules/{name:path}/trigger", guarded(trigger), methods=["POST"]),
        Route("/api/schedules/{name:path}", guarded(api_schedule), methods=["GET"]),
    ]


def _name(request: Request) -> str:
    """The schedule's name in the address (ScheduleNotFoundError when it cannot be one)."""
    name = str(request.path_params["name"])
    if not NAME.fullmatch(name):
        raise ScheduleNotFoundError(views.text(name, 64))
    return name


def _run_now(body: bytes) -> bool:
    """`run_now` of a resume's body, `{"run_now": true|false}` (an empty body: false).

    Raises:
        ValueError: anything else.
    """
    try:
        document: Any = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise ValueError('the body must be {"run_now": true|false}') from None
    if not isinstance(document, dict) or set(document) - {"run_now"}:
        raise ValueError('the body must be {"run_now": true|false}')
    run_now = document.get("run_now", False)
    if not isinstance(run_now, bool):
        raise ValueError('"run_now" must be true or false')
    return run_now
