"""What a caller of the daemon may do with tasks: submit under its own name, and see and touch only its own.

With credentials on, a task records the principal that submitted it (its owner). A `client` sees, watches
and cancels only the tasks it owns: another's task is answered as unknown, so ids are no way to learn what
others run. An `operator` sees every task, as does every caller of a daemon that checks no credentials.
SubmitTask and a session's submissions share `accept` so both apply the same rules.
"""

from __future__ import annotations

import asyncio
import dataclasses

from opentelemetry.trace import SpanKind

from worker_abstraction import _convert, auth
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.errors import InvalidParametersError, TaskNotFoundError
from worker_abstraction.observability import tracing
from worker_abstraction.options import scoped_key
from worker_abstraction.orchestrator.core.engine import Engine
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Acceptance, Accepted
from worker_abstraction.types import TaskQuery, TaskSpec, TaskStatus
from worker_abstraction.workflows.model import WORKFLOW_CAPABILITY
from worker_abstraction.workflows.records import definition_of, step_capabilities

MAX_REASON = 4096  # characters of a cancel's reason


def accept(engine: Engine, request: pb.SubmitTaskRequest, then: Accepted) -> None:
    """Accept a submission from the wire as the calling principal's: `then(acceptance, None)` once it is
    stored (a duplicate if its idempotency key named an earlier submission of the caller's: then that task's
    handle), `then(None, error)` if it is refused or cannot be stored.

    Raises:
        InvalidParametersError / InvalidTaskOptionsError: the request breaks the contract.
        PermissionDeniedError: the caller may not call the capability (or, for a workflow, one its steps call).
    """
    accept_spec(engine, _convert.spec_from_pb(request), then)


def accept_spec(engine: Engine, spec: TaskSpec, then: Accepted) -> None:
    """`accept`, for a task the daemon made from a request of another kind (a workflow run)."""
    spec = _callers(spec)
    if not tracing.enabled():
        engine.accept(spec, then)
        return
    # The daemon's span of the submission, under the caller's; what runs of the task continues it.
    span = tracing.started_submit_span(spec.capability, kind=SpanKind.SERVER, parent=spec.trace_context)

    def ended(accepted: Acceptance | None, error: BaseException | None) -> None:
        if accepted is not None:
            span.set_attributes({"wa.task_id": accepted.handle.task_id, "wa.duplicate": accepted.duplicate})
        elif error is not None:
            span.record_exception(error)
        tracing.end(span, None if accepted is not None else repr(error))
        then(accepted, error)

    try:
        engine.accept(dataclasses.replace(spec, trace_context=tracing.context_of(span)), ended)
    except BaseException as error:
        span.record_exception(error)
        tracing.end(span, repr(error))
        raise


async def submit(engine: Engine, request: pb.SubmitTaskRequest | TaskSpec) -> tuple[AsyncTaskHandle, bool]:
    """`accept` (or `accept_spec`), awaited: the task's handle, and whether it was a duplicate."""
    acceptance: asyncio.Future[Acceptance] = asyncio.get_running_loop().create_future()

    def then(accepted: Acceptance | None, error: BaseException | None) -> None:
        if not acceptance.done():
            if accepted is not None:
                acceptance.set_result(accepted)
            else:
                acceptance.set_exception(error or RuntimeError("acceptance ended without an answer"))

    if isinstance(request, TaskSpec):
        accept_spec(engine, request, then)
    else:
        accept(engine, request, then)
    accepted = await acceptance
    return accepted.handle, accepted.duplicate


def _callers(spec: TaskSpec) -> TaskSpec:
    """The spec as the calling principal's, if it may call the capability (PermissionDeniedError if not):
    its owner, and its idempotency key in the owner's own space (see `options.scoped_key`)."""
    if spec.capability == WORKFLOW_CAPABILITY:
        # A workflow's steps run under its owner: it is the caller's to run when each of them is its to call.
        for capability in sorted(step_capabilities(definition_of(spec.params))):
            auth.check_may_call(capability)
    else:
        auth.check_may_call(spec.capability)
    owner = auth.current_owner()
    if spec.owner != owner:  # (whatever the request claimed; most requests claim nothing, as they should)
        spec = dataclasses.replace(spec, owner=owner)
    key = spec.options.idempotency_key
    if key and owner:
        spec = dataclasses.replace(
            spec, options=dataclasses.replace(spec.options, idempotency_key=scoped_key(owner, key))
        )
    return spec


async def check_visible(engine: Engine, task_id: str) -> None:
    """Raises TaskNotFoundError when the caller may not see this task (or nobody knows it)."""
    mine = auth.restricted_to()
    if mine is not None and (await engine.task(task_id)).owner != mine:
        raise TaskNotFoundError(task_id, "the orchestrator")


async def watch(engine: Engine, task_id: str) -> AsyncTaskHandle:
    """A handle on a task the caller may see.

    Raises:
        TaskNotFoundError: nobody knows it, or it is another principal's.
    """
    await check_visible(engine, task_id)
    return await engine.watch(task_id)


def sequence_of(position: int, after: int, *, resumed: bool, terminal: bool) -> int | None:
    """The sequence number a watcher that saw a task's stream up to `after` gets the update at `position`
    (1-based) of the run here under; None: it saw it already.

    Positions number a run's updates gaplessly, so resuming is exact, but a run carried on after a restart
    (or taken over from another daemon) numbers from 1 again: all of it is then new to a watcher of the run
    before, and is numbered on from what that watcher saw (a workflow's steps are told again as its run
    finds them; a task's updates say where it is now). A watcher of an older, longer stream still hears the end.
    """
    if resumed and after:
        return after + position
    if position > after:
        return position
    return after + 1 if terminal else None


def scoped(query: TaskQuery) -> TaskQuery:
    """The query narrowed to the caller's own tasks when it may not see every task."""
    mine = auth.restricted_to()
    return query if mine is None else dataclasses.replace(query, owner=mine)


async def cancel(engine: Engine, task_id: str, reason: str) -> tuple[bool, TaskStatus, str]:
    """Cancel a task the caller may see: whether it was canceled, its status when asked, and what happened.

    Raises:
        TaskNotFoundError: nobody knows it, or it is another principal's.
        InvalidParametersError: the reason is too long.
    """
    if len(reason) > MAX_REASON:
        raise InvalidParametersError([f"reason may be at most {MAX_REASON} characters, got {len(reason)}"])
    handle = await watch(engine, task_id)
    status = handle.status
    canceled = await engine.cancel(task_id, reason)
    final = handle.updates[-1] if handle.done() and handle.updates else None
    if not canceled:
        message = "already finished"
    elif final is not None and final.status is TaskStatus.CANCELED:
        message = f"canceled: {final.error_message}"
    else:
        message = "canceling: its worker was asked to stop it"
    return canceled, status, message
