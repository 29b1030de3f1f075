"""Runs one accepted task: its handler, its deadline, and the updates it publishes."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic_core
from opentelemetry import trace
from opentelemetry.trace import Span

from worker_abstraction import limits
from worker_abstraction.capability import CapabilityDef
from worker_abstraction.context import TaskContext
from worker_abstraction.exchanges import replayed
from worker_abstraction.observability import tracing
from worker_abstraction.types import TaskFailure, TaskStatus, traceback_tail
from worker_abstraction.worker import failures, tasklog
from worker_abstraction.worker.asking import Questions, Suspended
from worker_abstraction.worker.tasks import TaskRecord

TRACEBACK_LINE = 1_000  # characters of one line of a handler's traceback sent with its failure


async def run_task(
    record: TaskRecord,
    definition: CapabilityDef,
    owner: object,
    arguments: dict[str, Any],
    *,
    timeout_seconds: float,
    metadata: Mapping[str, str],
    executor: Executor,
    span: Span | None = None,
    session: tuple[str, bool] = ("", False),
) -> None:
    """Drive a task from PENDING to a terminal state; never raises (a failing handler means FAILED).

    The one exception is cancellation of the runner itself, re-raised once the task is CANCELED. `span` (the
    handler span, when tracing is on) is current while the handler runs and ends with the task's outcome.
    """
    if span is None:
        await _run(record, definition, owner, arguments, timeout_seconds, metadata, executor, session)
        return
    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        try:
            await _run(record, definition, owner, arguments, timeout_seconds, metadata, executor, session)
        finally:
            status = record.status
            span.set_attribute("wa.status", status.name)
            failed = status is not TaskStatus.COMPLETED
            tracing.end(span, (record.log[-1].error_message or status.name) if failed and record.log else None)


async def _run(
    record: TaskRecord,
    definition: CapabilityDef,
    owner: object,
    arguments: dict[str, Any],
    timeout_seconds: float,
    metadata: Mapping[str, str],
    executor: Executor,
    session: tuple[str, bool],
) -> None:
    started = time.perf_counter()
    record.running()
    try:
        call = _prepare(record, definition, owner, arguments, timeout_seconds, metadata, executor, session)
    except Exception as error:
        # The handler never started, so it is not the handler's failure; but the task must still end, or its
        # sender waits for ever.
        broken = failures.worker_error(error)
        record.failed(broken)
        tasklog.failed(record, broken, time.perf_counter() - started, error)
        return
    failure: TaskFailure | None = None
    raised: BaseException | None = None  # what the handler raised, for the log's traceback
    output_json = ""
    try:
        async with asyncio.timeout(None) as scope:
            loop = asyncio.get_running_loop()
            if record.questions is not None:  # (it stops the deadline while the handler waits for an answer)
                record.questions.deadline.scope = scope

            def begin() -> None:  # the handler starts: its time counts from now (not while it waited)
                if timeout_seconds > 0:
                    scope.reschedule(loop.time() + timeout_seconds)

            result = await call(begin)
        output_json = pydantic_core.to_json(result).decode()
    except TimeoutError as error:
        # Only our own deadline is DeadlineExceeded; a TimeoutError the handler raised itself is its error.
        if scope.expired():
            failure = failures.deadline_exceeded(timeout_seconds)
        else:
            failure, raised = failures.handler_error(error), error
    except Suspended:  # (its question freed the slot: the attempt ended INPUT_REQUIRED, nothing more to say)
        return
    except asyncio.CancelledError:
        failure = cut_short(record)
        record.canceled(failure)
        tasklog.canceled(record, failure, time.perf_counter() - started)
        raise
    except pydantic_core.PydanticSerializationError as error:
        failure = failures.output_not_serializable(error)
    except Exception as error:
        failure, raised = failures.handler_error(error), error
    seconds = time.perf_counter() - started
    if record.cancel_requested.is_set():
        # Once a cancel was asked for (and CancelTask answered canceled=True), the task ends CANCELED whatever
        # the handler did next: raised, overran, or noticed the request and returned normally.
        failure = failures.canceled(record.cancel_reason)
        record.canceled(failure)
        tasklog.canceled(record, failure, seconds)
    elif failure is not None:
        if raised is not None:  # the handler's own error: its traceback travels with the failure
            failure = dataclasses.replace(failure, traceback=handler_traceback(raised))
        record.failed(failure)
        tasklog.failed(record, failure, seconds, raised)
    elif (problem := limits.too_large("the output would", len(output_json))) is not None:
        failure = failures.output_too_large(problem)
        record.failed(failure)
        tasklog.failed(record, failure, seconds, None)
    else:
        record.completed(output_json)
        tasklog.succeeded(record, seconds)
    # The error's traceback holds this frame, which holds the error: drop it, as `except ... as` does, so the
    # handler's frames (and its arguments) are freed now rather than by the cycle collector.
    raised = None


# Frames above a handler's own: this module's, and the thread pool's for a plain handler.
_PLUMBING = frozenset({__name__, "concurrent.futures.thread"})


def handler_traceback(error: BaseException) -> str:
    """`error`'s traceback from the handler's frames on (this module's are left out), cut to its end.

    Each line is cut to `TRACEBACK_LINE` characters first, so that a huge message does not push every frame
    out (the failure's `message` carries the message whole).
    """
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_globals.get("__name__") in _PLUMBING:
        frames = frames.tb_next
    chunks = traceback.TracebackException(type(error), error, frames).format()
    return traceback_tail("".join(_cut_line(chunk) for chunk in chunks))


def _cut_line(chunk: str) -> str:
    if len(chunk) <= TRACEBACK_LINE:
        return chunk
    return f"{chunk[:TRACEBACK_LINE]}… ({len(chunk) - TRACEBACK_LINE} more characters)\n"


def cut_short(record: TaskRecord) -> TaskFailure:
    """Why a task's runner was stopped before its handler finished.

    Asked to cancel (and past the grace period), or stopped by the worker shutting down: only the first was
    wanted; the second is the worker's doing, and the task deserves another try elsewhere.
    """
    if record.cancel_requested.is_set():
        return failures.canceled(record.cancel_reason)
    return failures.worker_stopped()


def _prepare(
    record: TaskRecord,
    definition: CapabilityDef,
    owner: object,
    arguments: dict[str, Any],
    timeout_seconds: float,
    metadata: Mapping[str, str],
    executor: Executor,
    session: tuple[str, bool] = ("", False),
) -> Callable[[Callable[[], None]], Awaitable[Any]]:
    """The handler call, ready to await with what to do when the handler starts: at once for an async
    handler, once a thread takes it for a plain one (which may wait for one when every thread is busy)."""
    loop = asyncio.get_running_loop()
    # One instant for the deadline the handler sees and the one the worker enforces.
    monotonic_now, wall_now = time.monotonic(), datetime.now(UTC)
    limited = timeout_seconds > 0
    context: TaskContext | None = None
    if definition.context_parameter is not None:
        record.questions = Questions(record, frees_slot=definition.frees_slot_on_input, replay=replayed(metadata))
        context = arguments[definition.context_parameter] = TaskContext(
            task_id=record.task_id,
            capability=definition.spec.name,
            params=dict(arguments),
            metadata=metadata,
            worker_id=record.worker_id,
            attempt=max(record.attempt, 1),  # Task.attempt 0: an orchestrator that does not number attempts
            deadline=wall_now + timedelta(seconds=timeout_seconds) if limited else None,
            deadline_monotonic=monotonic_now + timeout_seconds if limited else None,
            publish_progress=record.progress,
            loop=loop,
            cancel_requested=record.cancel_requested,
            publish_chunk=record.chunk,
            questions=record.questions,
            session_key=session[0],
            session_moved=session[1],
        )
    if definition.is_async:

        async def call(begin: Callable[[], None]) -> Any:
            begin()
            return await definition.function(owner, **arguments)

        return call

    function = definition.function

    async def call_in_thread(begin: Callable[[], None]) -> Any:
        def blocking() -> Any:
            if context is not None:
                context._begin(timeout_seconds)
            loop.call_soon_threadsafe(begin)
            return function(owner, **arguments)

        return await loop.run_in_executor(executor, blocking)

    return call_in_thread
