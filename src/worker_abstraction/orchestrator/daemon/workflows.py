"""OrchestratorService's workflow calls: a workflow run is a task of capability `wa.workflow` (see
`core.workflow_run`), so each call is the task call it stands for, with the caller's rules of `callers`, and
its answer told in steps."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from worker_abstraction import _convert
from worker_abstraction._convert import bounds
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.codec import short
from worker_abstraction.errors import InvalidParametersError, TaskNotFoundError
from worker_abstraction.observability import tracing
from worker_abstraction.options import MAX_ID_LENGTH, options_of
from worker_abstraction.orchestrator.core.engine import Engine
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.workflow_handle import WorkflowHandle
from worker_abstraction.orchestrator.daemon import callers
from worker_abstraction.workflows.model import WORKFLOW_CAPABILITY
from worker_abstraction.workflows.records import definition_of, listed_record
from worker_abstraction.workflows.rerun import rerun_params

MAX_STEP_NAME = 256


async def run(engine: Engine, request: pb.RunWorkflowRequest) -> pb.RunWorkflowResponse:
    bounds.check(request)
    definition = _definition(request.definition_json)
    if request.workflow_id:
        check_id(request.workflow_id)
    options = options_of(
        None,
        {
            "task_id": request.workflow_id,
            "idempotency_key": request.idempotency_key,
            "priority": request.priority,
            "timeout_seconds": 0,
            "not_before": _convert.from_timestamp(request.not_before) if request.HasField("not_before") else None,
            "delay_seconds": request.delay_seconds,
        },
    )
    caller_trace = tuple(sorted(tracing.carrier(request.trace_context).items()))
    spec = engine.spec(WORKFLOW_CAPABILITY, {"workflow": definition}, options, caller_trace)
    handle, duplicate = await callers.submit(engine, spec)
    return pb.RunWorkflowResponse(workflow_id=handle.task_id, duplicate=duplicate)


async def get(engine: Engine, request: pb.GetWorkflowRequest) -> pb.WorkflowRun:
    handle = await _watch(engine, request.workflow_id)
    return _convert.run_to_pb(WorkflowHandle(handle).record(), definition_of(handle.params))


async def page(engine: Engine, request: pb.ListWorkflowsRequest) -> pb.ListWorkflowsResponse:
    # The task listing's own request, so its checks (statuses, page size, token) are the same.
    listing = pb.ListTasksRequest(
        statuses=request.statuses,
        capability=WORKFLOW_CAPABILITY,
        limit=request.limit,
        page_token=request.page_token,
    )
    query = callers.scoped(_convert.query_from_list_request(listing))
    records, more = await engine.task_page(query)
    return pb.ListWorkflowsResponse(
        workflows=[_convert.run_to_pb(listed_record(r)) for r in records],
        next_page_token=str(query.offset + query.limit) if more else "",
    )


async def watch(engine: Engine, request: pb.WatchWorkflowRequest) -> AsyncIterator[pb.WorkflowEvent]:
    """The run's events numbered as WatchTask numbers its task's updates (see the servicer's WatchTask)."""
    bounds.check(request)
    handle = await _watch(engine, request.workflow_id)
    position, after, resumed = 0, request.after_sequence, handle.resumed
    async for update in handle:
        position += 1
        sequence = callers.sequence_of(position, after, resumed=resumed, terminal=update.is_terminal)
        if sequence is None:
            continue
        run = WorkflowHandle(handle).record() if update.is_terminal else None
        yield _convert.event_to_pb(update, sequence, run)


async def cancel(engine: Engine, request: pb.CancelWorkflowRequest) -> pb.CancelWorkflowResponse:
    await _watch(engine, request.workflow_id)
    canceled, status, message = await callers.cancel(engine, request.workflow_id, request.reason)
    return pb.CancelWorkflowResponse(
        workflow_id=request.workflow_id,
        canceled=canceled,
        status=int(status),  # type: ignore[arg-type]  # TaskStatus mirrors the proto enum
        message=message,
    )


async def rerun(engine: Engine, request: pb.RerunWorkflowRequest) -> pb.RunWorkflowResponse:
    if not request.step:
        raise InvalidParametersError(["step is empty; name the step to run again"])
    if len(request.step) > MAX_STEP_NAME:
        raise InvalidParametersError([f"step may be at most {MAX_STEP_NAME} characters, got {len(request.step)}"])
    if request.new_workflow_id:
        check_id(request.new_workflow_id, "new_workflow_id")
    handle = await _watch(engine, request.workflow_id)
    record = WorkflowHandle(handle).record()
    params = rerun_params(definition_of(handle.params), record, request.step, downstream=not request.only_this_step)
    options = options_of(None, {"task_id": request.new_workflow_id, "timeout_seconds": 0})
    spec = engine.spec(WORKFLOW_CAPABILITY, params, options)
    rerun, duplicate = await callers.submit(engine, spec)
    return pb.RunWorkflowResponse(workflow_id=rerun.task_id, duplicate=duplicate)


def check_id(task_id: str, field: str = "workflow_id") -> None:
    """Raises InvalidParametersError for an empty id, TaskNotFoundError for one longer than any id."""
    if not task_id:
        raise InvalidParametersError([f"{field} is empty; name the {field.removesuffix('_id').replace('_', ' ')}"])
    if len(task_id) > MAX_ID_LENGTH:
        raise TaskNotFoundError(short(task_id), f"the orchestrator (ids are at most {MAX_ID_LENGTH} characters)")


async def _watch(engine: Engine, workflow_id: str) -> AsyncTaskHandle:
    check_id(workflow_id)
    handle = await callers.watch(engine, workflow_id)
    if handle.capability != WORKFLOW_CAPABILITY:
        raise TaskNotFoundError(short(workflow_id), "the workflows (it is a task; use the task calls)")
    return handle


def _definition(text: str) -> dict[str, object]:
    if not text.strip():
        raise InvalidParametersError(["definition_json is empty; send the workflow in its file format (JSON)"])
    try:
        definition = json.loads(text)
    except RecursionError:
        raise InvalidParametersError(["definition_json is nested too deeply"]) from None
    except ValueError as error:
        raise InvalidParametersError([f"definition_json is not JSON: {short(str(error))}"]) from None
    if not isinstance(definition, dict):
        raise InvalidParametersError(
            [f"definition_json must be a JSON object (the workflow file format), got {type(definition).__name__}"]
        )
    return definition
