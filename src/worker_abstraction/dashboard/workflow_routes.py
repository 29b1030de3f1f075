"""The dashboard's workflow routes: the runs, one run with its graph, and what an operator may do to one.

GET  /api/workflows                  the latest runs, newest first: `status` (one or more, as the task list
                                     takes them), `q` (an id or its start), `since`, `until`, `limit`, `offset`
GET  /api/workflows/{id}             one run: every step (status, tasks, error, output preview), the failed
                                     step, rerun_of, and the graph's edges (404: unknown, or a task that is
                                     not a workflow)
POST /api/workflows/{id}/cancel      cancel a run: its running steps are canceled, none starts (409 once ended)
POST /api/workflows/{id}/rerun       {"step": NAME, "downstream": true}: run an ended run again from a step,
                                     as a new run (409 while it runs, 400 for a step it does not have)

A run is a task of capability `wa.workflow`, so its page follows it through the task events of the live
feed (`feed.py`), which carry its id: the page reads the run again on each of them.

While a run goes, its record (from its task's updates) names each step's status but not its output, so
the output of a step that completed is read from the step's task, at most `READS` task reads per request.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker_abstraction.dashboard import queries, views
from worker_abstraction.dashboard.access import Gate, bounded_body
from worker_abstraction.dashboard.actions import ActionRefusedError
from worker_abstraction.dashboard.workflow_views import (
    Graph,
    graph,
    kept_outputs,
    preview,
    workflow_row,
    workflow_view,
)
from worker_abstraction.errors import TaskNotFoundError
from worker_abstraction.options import MAX_ID_LENGTH
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator
from worker_abstraction.types import TaskQuery, TaskRecord
from worker_abstraction.workflows.model import WORKFLOW_CAPABILITY
from worker_abstraction.workflows.records import COMPLETED, WorkflowRecord, listed_record, step_task_id

logger = logging.getLogger(__name__)

FILTERS = ("status", "q", "since", "until", "limit", "offset")
READS = 60  # step tasks read per request for the outputs of a running workflow's completed steps
MAP_READS = 3  # of them for one map step (its preview shows its first elements' outputs)
MAX_BODY = 4_096  # bytes of a rerun's body

Handler = Callable[[Request], Awaitable[Response]]


def workflow_query(params: Mapping[str, Sequence[str]]) -> TaskQuery:
    """The query for the list of runs (a task query of capability `wa.workflow`).

    Raises:
        QueryError: unknown parameters, or values out of range (every one named).
    """
    problems = []
    unknown = sorted(set(params) - set(FILTERS))
    if unknown:
        shown = ", ".join(views.text(name, 40) for name in unknown[:5])
        problems.append(f"unknown parameters {shown}; known: {', '.join(FILTERS)}")
    try:
        query = queries.task_query({name: values for name, values in params.items() if name in FILTERS})
    except queries.QueryError as error:
        problems.append(str(error))
    if problems:
        raise queries.QueryError("; ".join(problems))
    return dataclasses.replace(query, capability=WORKFLOW_CAPABILITY)


async def read(orchestrator: AsyncOrchestrator, workflow_id: str) -> tuple[TaskRecord, WorkflowRecord]:
    """A run's task record and its workflow record.

    Raises:
        TaskNotFoundError: no task has this id, or it is not a workflow.
    """
    if not workflow_id or len(workflow_id) > MAX_ID_LENGTH:
        raise TaskNotFoundError(views.text(workflow_id, 64), "the workflows")
    task = await orchestrator.task(workflow_id)
    if task.capability != WORKFLOW_CAPABILITY:
        raise TaskNotFoundError(views.text(workflow_id, 64), "the workflows (it is a task)")
    handle = await orchestrator.watch_workflow(workflow_id)
    return task, handle.record()


async def outputs(
    orchestrator: AsyncOrchestrator, task: TaskRecord, record: WorkflowRecord, shape: Graph
) -> dict[str, str]:
    """The output previews of the shown steps that completed, by step."""
    kept = kept_outputs(task)
    found: dict[str, str] = {}
    budget = READS
    for node in shape.nodes:
        step = record.steps.get(node.name)
        if step is None or step.status != COMPLETED:
            continue
        if record.status.is_terminal:  # the final record holds every output
            found[node.name] = preview(step.output)
        elif node.name in kept:
            found[node.name] = preview(kept[node.name])
        elif budget > 0 and node.map is None:
            budget -= 1
            found[node.name] = await _task_output(orchestrator, step_task_id(record.workflow_id, node.name))
        elif budget > 0:
            shown = min(step.tasks, MAP_READS, budget)
            budget -= shown
            ids = [step_task_id(record.workflow_id, node.name, i) for i in range(shown)]
            parts = [await _task_output(orchestrator, task_id) for task_id in ids]
            more = f",… ({step.tasks - shown} more)" if step.tasks > shown else ""
            found[node.name] = "[" + ",".join(parts) + more + "]"
    return found


async def _task_output(orchestrator: AsyncOrchestrator, task_id: str) -> str:
    try:
        record = await orchestrator.task(task_id)
    except TaskNotFoundError:
        return "?"
    last = record.last_update
    return views.text(last.output_json or "null", 500) if last is not None else "?"


def routes(orchestrator: AsyncOrchestrator, guarded: Callable[[Handler], Handler], gate: Gate) -> list[Route]:
    """The workflow routes, each behind the dashboard's guard (`guarded`, which also maps errors to statuses)."""

    async def api_workflows(request: Request) -> Response:
        params = {name: request.query_params.getlist(name) for name in request.query_params}
        query = workflow_query(params)
        tasks, more = await orchestrator.engine.task_page(query)
        rows = []
        for task in tasks:
            if task.status.is_terminal:  # its final update holds its whole record
                record = _listed(task)
            else:  # its steps' statuses are in its updates, which the engine following it has
                try:
                    record = (await orchestrator.watch_workflow(task.task_id)).record()
                except TaskNotFoundError:
                    continue
            rows.append(workflow_row(task, record))
        return JSONResponse({"workflows": rows, "more": more, "offset": query.offset, "limit": query.limit})

    async def api_workflow(request: Request) -> Response:
        task, record = await read(orchestrator, _workflow_id(request))
        shape = graph(task.params.get("workflow"), record)
        operator = gate.visitor(request).operator
        may = {"cancel": operator and not record.status.is_terminal, "rerun": operator and record.status.is_terminal}
        found = workflow_view(task, record, shape, await outputs(orchestrator, task, record, shape), may)
        return JSONResponse(found)

    async def cancel(request: Request) -> Response:
        workflow_id = _workflow_id(request)
        _, record = await read(orchestrator, workflow_id)
        if record.status.is_terminal:
            raise ActionRefusedError(workflow_id, f"it has ended ({record.status.name}): there is nothing to cancel")
        by = gate.who(request)
        if not await orchestrator.cancel_workflow(workflow_id, f"canceled from the dashboard by {by}"):
            raise ActionRefusedError(workflow_id, "it ended before the cancel reached it")
        logger.info("workflow %s canceled from the dashboard by %s", workflow_id, by, extra={"task_id": workflow_id})
        return JSONResponse({"status": (await orchestrator.task(workflow_id)).status.name})

    async def rerun(request: Request) -> Response:
        workflow_id = _workflow_id(request)
        step, downstream = _rerun_body(await bounded_body(request, MAX_BODY))
        _, record = await read(orchestrator, workflow_id)
        if not record.status.is_terminal:
            raise ActionRefusedError(workflow_id, f"it is {record.status.name}: only a run that ended can be rerun")
        handle = await orchestrator.rerun_workflow(workflow_id, step, downstream=downstream)
        logger.info(
            "workflow %s rerun from step %s by %s as %s",
            workflow_id,
            step,
            gate.who(request),
            handle.workflow_id,
            extra={"task_id": workflow_id},
        )
        return JSONResponse({"workflow_id": handle.workflow_id, "status": handle.status.name})

    return [
        Route("/api/workflows", guarded(api_workflows), methods=["GET"]),
        Route("/api/workflows/{workflow_id:path}/cancel", guarded(cancel), methods=["POST"]),
        Route("/api/workflows/{workflow_id:path}/rerun", guarded(rerun), methods=["POST"]),
        Route("/api/workflows/{workflow_id:path}", guarded(api_workflow), methods=["GET"]),
    ]


def _listed(task: TaskRecord) -> WorkflowRecord:
    """An ended run's record, from its task record's final update (which holds it whole)."""
    return listed_record(task)


def _workflow_id(request: Request) -> str:
    workflow_id = str(request.path_params["workflow_id"])
    if not workflow_id or len(workflow_id) > MAX_ID_LENGTH:
        raise TaskNotFoundError(views.text(workflow_id, 64), "the workflows")
    return workflow_id


def _rerun_body(body: bytes) -> tuple[str, bool]:
    """The step and `downstream` of a rerun's body, `{"step": NAME, "downstream": true}`.

    Raises:
        ValueError: anything else.
    """
    try:
        document: Any = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise ValueError('the body must be {"step": NAME, "downstream": true|false}') from None
    if not isinstance(document, dict) or set(document) - {"step", "downstream"}:
        raise ValueError('the body must be {"step": NAME, "downstream": true|false}')
    step, downstream = document.get("step"), document.get("downstream", True)
    if not isinstance(step, str) or not step or len(step) > 64:
        raise ValueError('"step" must name one of the workflow\'s steps')
    if not isinstance(downstream, bool):
        raise ValueError('"downstream" must be true or false')
    return step, downstream
