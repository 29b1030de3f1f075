"""One MCP `tools/call` as a task on the orchestrator daemon: submitted, followed, answered, turned into a result.

The task's progress becomes MCP progress notifications (sent only when the caller gave a progressToken).
A question the handler asks (`ctx.request_input`) becomes what the caller's protocol revision offers:
- 2026-07-28: an `input_required` result carrying one form elicitation; the client answers it and calls the
  tool again with the answer and the request state, which names the task: the same task goes on.
- earlier revisions: an `elicitation/create` request to the client, when the client declared elicitation
  and the connection can carry a request; without either the call keeps waiting, and the question can be
  answered elsewhere (`wa respond`, the dashboard).
Errors map in one place, `_refusal`: arguments the capability refuses, and credentials the daemon refuses,
are protocol errors; a task that fails, times out or is canceled is a tool result with `isError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from worker_abstraction.errors import (
    InvalidParametersError,
    PermissionDeniedError,
    TaskError,
    TaskNotFoundError,
    TaskNotWaitingError,
    WorkerAbstractionError,
)
from worker_abstraction.exchanges import InputRequest
from worker_abstraction.interop.mcp_tools import TeamTool
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator
from worker_abstraction.types import TaskStatus

logger = logging.getLogger(__name__)

ANSWER_KEY = "value"  # the form field a question whose schema is no flat object is asked in
_STATE_VERSION = 1
_cancels: set[asyncio.Task[Any]] = set()  # cancels sent for calls the client gave up on (kept until done)


async def call_tool(
    orchestrator: RemoteOrchestrator,
    tool: TeamTool,
    params: types.CallToolRequestParams,
    ctx: ServerRequestContext[Any, Any],
) -> types.CallToolResult | types.InputRequiredResult:
    """Run `tool` with the call's arguments as a task on the daemon (or go on with the task a retried call's
    request state names) and return the tool result.

    Raises:
        MCPError: the arguments break the capability's parameters, or the daemon refused the credentials.
    """
    try:
        if params.request_state:
            handle, answered = await _answered(orchestrator, params)
        else:
            handle, answered = await orchestrator.execute_task(tool.name, params.arguments or {}), set()
        return await _follow(handle, tool, ctx, answered)
    except (InvalidParametersError, PermissionDeniedError, TaskNotFoundError) as error:
        raise _refusal(error) from error
    except WorkerAbstractionError as error:  # no worker, a full queue, an unreachable daemon: the call failed
        return error_result(f"{type(error).__name__}: {error}")


def error_result(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def _refusal(error: WorkerAbstractionError) -> MCPError:
    if isinstance(error, InvalidParametersError):
        return MCPError(types.INVALID_PARAMS, f"invalid arguments: {'; '.join(error.problems)}")
    if isinstance(error, TaskNotFoundError):
        return MCPError(types.INVALID_PARAMS, f"the request state names no task the caller may follow: {error}")
    return MCPError(types.INVALID_REQUEST, f"refused by the orchestrator: {error}")


async def _follow(
    handle: AsyncTaskHandle, tool: TeamTool, ctx: ServerRequestContext[Any, Any], answered: set[str]
) -> types.CallToolResult | types.InputRequiredResult:
    try:
        async for update in handle:
            if update.status is TaskStatus.RUNNING and (update.progress or update.progress_message):
                await ctx.session.report_progress(update.progress, 1.0, update.progress_message or None)
            question = handle.input_request
            if update.status is not TaskStatus.INPUT_REQUIRED or question is None or question.request_id in answered:
                continue  # (a question of the replayed past, or one answered already)
            if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                return _input_required(handle.task_id, question)
            if await _elicit(handle, question, ctx):
                answered.add(question.request_id)
            else:
                text = f"waiting for input on task {handle.task_id}: {question.prompt}"
                await ctx.session.report_progress(update.progress, 1.0, text)
                answered.add(question.request_id)  # (asked once; answered elsewhere, e.g. `wa respond`)
    except asyncio.CancelledError:  # the client canceled the call (or went away): so is the task
        cancel = asyncio.ensure_future(handle.cancel("the MCP client canceled the call"))
        _cancels.add(cancel)
        cancel.add_done_callback(_cancels.discard)
        raise
    try:
        output = await handle.result()
    except TaskError as error:
        return error_result(f"{type(error).__name__}: {error}")
    text = json.dumps(output, ensure_ascii=False)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=tool.structured_output(output)
    )


# ---- questions ---------------------------------------------------------------------------------------


def form_of(question: InputRequest) -> tuple[dict[str, Any], bool]:
    """The elicitation form for a question, and whether the answer is the form's one `value` field.

    MCP forms are flat objects of primitive fields; a question whose schema is one is asked as it is, any
    other (or none: any JSON value, asked as text) inside a `value` field.
    """
    schema = question.schema
    if isinstance(schema, dict) and schema.get("type") == "object" and _flat(schema.get("properties")):
        return schema, False
    field = schema if isinstance(schema, dict) and _flat({ANSWER_KEY: schema}) else {"type": "string"}
    return {"type": "object", "properties": {ANSWER_KEY: field}, "required": [ANSWER_KEY]}, True


def _flat(properties: Any) -> bool:
    primitive = {"string", "number", "integer", "boolean"}
    if not isinstance(properties, dict) or not properties:
        return False
    return all(isinstance(p, dict) and (p.get("type") in primitive or "enum" in p) for p in properties.values())


def _answer_of(question: InputRequest, content: dict[str, Any] | None) -> Any:
    _, wrapped = form_of(question)
    content = content or {}
    if not wrapped:
        return content
    value = content.get(ANSWER_KEY)
    if question.schema is None and isinstance(value, str):  # any JSON value, typed as text
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _input_required(task_id: str, question: InputRequest) -> types.InputRequiredResult:
    form, _ = form_of(question)
    request = types.ElicitRequest(params=types.ElicitRequestFormParams(message=question.prompt, requested_schema=form))
    state = json.dumps({"v": _STATE_VERSION, "task_id": task_id, "request_id": question.request_id})
    return types.InputRequiredResult(input_requests={question.request_id: request}, request_state=state)


async def _answered(
    orchestrator: RemoteOrchestrator, params: types.CallToolRequestParams
) -> tuple[AsyncTaskHandle, set[str]]:
    """The task a retried call goes on with, once the answer it carries is given to it."""
    try:
        state = json.loads(params.request_state or "")
        task_id, request_id = str(state["task_id"]), str(state["request_id"])
    except (ValueError, KeyError, TypeError):
        raise MCPError(types.INVALID_PARAMS, "the request state is not one this server made") from None
    handle = await orchestrator.watch(task_id)
    response = (params.input_responses or {}).get(request_id)
    question = handle.input_request
    if question is None or question.request_id != request_id:
        return handle, {request_id}  # answered meanwhile (elsewhere, or by an earlier retry)
    if not isinstance(response, types.ElicitResult) or response.action != "accept":
        await handle.cancel("the MCP client declined to answer")
        return handle, {request_id}
    with contextlib.suppress(TaskNotWaitingError):  # (answered meanwhile)
        await handle.provide_input(_answer_of(question, response.content), request_id=request_id)
    return handle, {request_id}


async def _elicit(handle: AsyncTaskHandle, question: InputRequest, ctx: ServerRequestContext[Any, Any]) -> bool:
    """Ask the client (an earlier revision's elicitation request); False: it cannot be asked."""
    capabilities = ctx.session.client_capabilities
    if not ctx.session.can_send_request or capabilities is None or capabilities.elicitation is None:
        return False
    form, _ = form_of(question)
    result = await ctx.session.elicit_form(question.prompt, form, related_request_id=ctx.request_id)
    if result.action != "accept":
        await handle.cancel("the MCP client declined to answer")
        return True
    try:
        await handle.provide_input(_answer_of(question, result.content), request_id=question.request_id)
    except TaskNotWaitingError:
        pass  # answered meanwhile, elsewhere
    except InvalidParametersError as error:  # the answer breaks the schema: the task keeps waiting
        logger.info("task %s: the MCP client's answer was refused: %s", handle.task_id, error)
        return False
    return True
