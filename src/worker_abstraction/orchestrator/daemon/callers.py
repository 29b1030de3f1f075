"""What a caller of the daemon may do with tasks: submit under its own name, and see and touch only its own.

With credentials on, a task records the principal that submitted it (its owner). A `client` sees, watches
and cancels only the tasks it owns: another's task is answered as unknown, so ids are no way to learn what
others run. An `operator` sees every task, as does every caller of a daemon that checks no credentials.
SubmitTask and a session's submissions share `submit` so both paths apply the same rules.
"""

from __future__ import annotations

import dataclasses

from opentelemetry.trace import SpanKind

from worker_abstraction import _convert, auth
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.errors import TaskNotFoundError
from worker_abstraction.observability import tracing
from worker_abstraction.options import scoped_key
from worker_abstraction.orchestrator.core.engine import Accepted, Engine
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.types import TaskQuery, TaskSpec


async def submit(engine: Engine, request: pb.SubmitTaskRequest) -> tuple[AsyncTaskHandle, bool]:
    """Accept a submission from the wire as the calling principal's: its handle, and whether its idempotency
    key named an earlier submission (then that task's handle).

    Raises:
        InvalidParametersError / InvalidTaskOptionsError: the request breaks the contract.
        PermissionDeniedError: the caller may not call the capability.
    """
    spec = _convert.spec_from_pb(request)
    if not tracing.enabled():
        return await _submit(engine, spec)
    # The daemon's span of the submission, under the caller's; what runs of the task continues it.
    with tracing.submit_span(spec.capability, kind=SpanKind.SERVER, parent=spec.trace_context) as span:
        handle, duplicate = await _submit(engine, dataclasses.replace(spec, trace_context=tracing.context_of(span)))
        span.set_attributes({"wa.task_id": handle.task_id, "wa.duplicate": duplicate})
        return handle, duplicate


def submit_soon(engine: Engine, request: pb.SubmitTaskRequest, then: Accepted) -> bool:
    """`submit` without a coroutine of its own, for a plain submission (no idempotency key, no id of the
    caller's, no trace to continue): `then(handle, None)` once it is accepted, `then(None, error)` if it
    cannot be stored. False (nothing done) when the submission needs `submit`.

    Raises:
        as `submit`, for what is checked at once.
    """
    if request.idempotency_key or request.task.task_id or tracing.enabled():
        return False
    return engine.accept_soon(_callers(_convert.spec_from_pb(request)), then)


def _callers(spec: TaskSpec) -> TaskSpec:
    """The spec as the calling principal's, if it may call the capability (PermissionDeniedError if not):
    its owner, and its idempotency key in the owner's own space (see `options.scoped_key`)."""
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


async def _submit(engine: Engine, spec: TaskSpec) -> tuple[AsyncTaskHandle, bool]:
    spec = _callers(spec)
    key = spec.options.idempotency_key
    known = await engine.find_idempotent(key) if key else None
    if known is not None:  # (the key is scoped to its owner: an earlier submission of the same caller's)
        return known, True
    return await engine.submit_spec(spec), False


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


def scoped(query: TaskQuery) -> TaskQuery:
    """The query narrowed to the caller's own tasks when it may not see every task."""
    mine = auth.restricted_to()
    return query if mine is None else dataclasses.replace(query, owner=mine)
