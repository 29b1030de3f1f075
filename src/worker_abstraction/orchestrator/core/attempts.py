"""A run's attempts: each on its way to a worker (its number stored before it is sent, then the dispatch),
what the worker's answer to it (ACCEPTED, BUSY, REJECTED or undelivered) makes of the run, and what a failed
attempt does: retried after the policy's back-off, or the task ended (dead-lettered when retries ran out).
See `run.py`'s docstring on attempt numbers and retries."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING

from worker_abstraction import lifecycle
from worker_abstraction.observability import tracing
from worker_abstraction.orchestrator.core import canceling, retries
from worker_abstraction.orchestrator.core.deadletters import dead_letter
from worker_abstraction.orchestrator.core.facts import ATTEMPT_BLOCK
from worker_abstraction.orchestrator.core.phase import Phase
from worker_abstraction.orchestrator.edge.dispatch import Answer, DispatchAnswer
from worker_abstraction.types import FailureOrigin, TaskFailure, TaskStatus, TaskUpdate, WorkerInfo

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.run import TaskRun

logger = logging.getLogger(__name__)

BUSY_HOLD_SECONDS = 0.25  # a worker that refused for capacity gets no task for this long


def place(run: TaskRun, worker: WorkerInfo) -> None:
    """The scheduler reserved a slot on `worker` for this task: send it there."""
    if run._hold_lost():
        return
    state = run.state
    reused = run._reuse_number
    number = state.attempt if reused else max(run._sent, state.attempt) + 1
    run._reuse_number = False
    run.phase = Phase.SENDING
    state.begin_attempt(number, worker.worker_id, worker.address)
    spec = worker.capability(run.capability)
    if spec is not None and spec.deprecated:
        _report_deprecated(run.capability, spec.semver, spec.deprecated)
    if run.session_key and not (spec is not None and spec.stateless):
        live = run._crew.scheduler.workers.keys()  # (the key's worker was gone: it moves here, the handler told)
        run.session_moved = run._crew.scheduler.sessions.bind(run.session_key, worker.worker_id, live=live)
    run._crew.standing.dispatched(worker.worker_id)
    run._start_deadline()
    # The worker's handler continues the attempt's span (or, untraced here, the caller's).
    trace_context = run._spans.placed(number, worker.worker_id) if run._spans is not None else None
    if reused or number > run._reserved:
        sending = _store_and_send(run, worker, number, trace_context, reused=reused)
        run._spawn(sending, f"store-{run.spec.task_id}")
    else:
        _send(run, worker, number, trace_context)


_DEPRECATED_SEEN: set[tuple[str, str]] = set()


def _report_deprecated(capability: str, version: str, advice: str) -> None:
    """Log, once per capability version, that tasks go to a deprecated version (`wa versions` lists them)."""
    if (capability, version) in _DEPRECATED_SEEN or len(_DEPRECATED_SEEN) >= 1024:
        return
    _DEPRECATED_SEEN.add((capability, version))
    logger.warning("tasks of %r go to deprecated version %s: %s", capability, version, advice[:200])


async def _store_and_send(
    run: TaskRun, worker: WorkerInfo, number: int, trace: tracing.TraceContext | None, *, reused: bool
) -> None:
    """Store what must be stored before attempt `number` goes to `worker`, then send it.

    A new number past the reservation: the next block is reserved first (never reused after a crash). A
    number a worker refused, sent again (to another worker, perhaps): the fact naming the worker is
    stored first, so that a run resumed after a crash looks for the attempt where it was sent, never
    on the worker that refused it while it runs on this one.
    """
    journal, task_id = run._journal, run.spec.task_id
    try:
        if reused:
            await journal.dispatching(task_id, worker.worker_id, worker.address, number)
        else:
            run._reserved = number + ATTEMPT_BLOCK - 1
            await journal.reserve(task_id, run._reserved)
    except Exception as error:  # a store that cannot write: fail loudly, never hang
        if not run.done():  # (a lost hold: the run was handed over, and says nothing)
            _dispatch_failed(run, error)
        return
    _send(run, worker, number, trace, stored=reused)


def _send(
    run: TaskRun, worker: WorkerInfo, number: int, trace: tracing.TraceContext | None, *, stored: bool = False
) -> None:
    crew = run._crew
    try:
        # Canceled, expired or handed over while its number was being stored: it goes nowhere, and no
        # fact names a worker it was not sent to.
        if not run.is_current(number) or run._hold_lost():
            return
        if not stored:
            run._journal.dispatched(run.spec.task_id, worker.worker_id, worker.address, number)
        run._sent = max(run._sent, number)
        sink = run._open_sink(number, worker.address)
        answered = crew.links.get(worker.address).dispatch(
            run.spec,
            attempt=number,
            worker_id=worker.worker_id,
            sink=sink,
            trace_context=trace,
            answers=run._answers,
            session_moved=run.session_moved,
        )
    except Exception as error:  # a bug: fail loudly, never hang
        _dispatch_failed(run, error)
        return
    answered.add_done_callback(functools.partial(_answered, run, worker, number))


def _dispatch_failed(run: TaskRun, error: BaseException) -> None:
    logger.error("dispatching task %s failed", run.spec.task_id, exc_info=error, extra=run._log_fields())
    failure = TaskFailure("OrchestratorError", repr(error), FailureOrigin.INFRASTRUCTURE, retryable=False)
    run._finish(retries.failed(run.state, failure))


def _answered(run: TaskRun, worker: WorkerInfo, number: int, answered: asyncio.Future[DispatchAnswer]) -> None:
    """The worker's answer to attempt `number`."""
    if answered.cancelled() or not run.is_current(number) or run._hold_lost():
        return
    if (error := answered.exception()) is not None:
        _dispatch_failed(run, error)
        return
    crew, answer = run._crew, answered.result()
    spans = run._spans
    if spans is not None:
        refused = answer.answer is not Answer.ACCEPTED and answer.answer is not Answer.BUSY
        spans.answered(answer.answer.value, answer.message if refused else None)
    if answer.answer is Answer.ACCEPTED:
        run.phase = Phase.RUNNING
        if run.cancel_reason:  # canceled while the dispatch was on its way
            run._spawn(canceling.cancel_on_worker(run), f"cancel-{run.spec.task_id}")
        return
    if run.cancel_reason:
        run._finish_canceled(run.cancel_reason)
        return
    if answer.answer is Answer.REJECTED:
        crew.standing.answered(worker.worker_id)
        failure = TaskFailure(lifecycle.REJECTED, answer.message, FailureOrigin.REJECTED, retryable=False)
        run._finish(retries.failed(run.state, failure))
        return
    crew.scheduler.release(run)
    if answer.answer is Answer.BUSY:
        run.state.forget_attempt()
        run._reuse_number = True  # it provably did not run there
        # Waiting again, stored as such: a run resumed from here does not look for it on that worker.
        run._journal.requeued(run.spec.task_id, number, run._failures)
        if spans is not None:
            spans.attempt_ended(None)
        crew.scheduler.hold_back(worker.worker_id, BUSY_HOLD_SECONDS)
    else:  # unreachable, or not a worker: never the task's fault; it goes to another worker
        logger.info("task %s could not be handed to worker %s (%s); it waits for another",
                    run.spec.task_id, worker.worker_id, answer.message, extra=run._log_fields())  # fmt: skip
        crew.standing.failed(worker.worker_id, f"task dispatch failed: {answer.message}")
        run.state.end_attempt(TaskStatus.FAILED, f"{lifecycle.DISPATCH_FAILED}: {answer.message}")
        run.state.worker_id = run.state.worker_address = ""
        run.avoid = run.avoid | {worker.worker_id}
        if spans is not None:
            spans.attempt_ended(answer.message)
    run._timers.stop("deadline")
    run.phase = Phase.WAITING
    run._enqueue()


def failed(run: TaskRun, failure: TaskFailure, update: TaskUpdate | None) -> None:
    """The current attempt failed: retry it, or end the task."""
    if run._hold_lost():
        return
    state, crew = run.state, run._crew
    number, worker_id = state.attempt, state.worker_id
    state.end_attempt(TaskStatus.FAILED, failure.text)
    run._timers.stop("deadline")
    if run._spans is not None:
        run._spans.attempt_ended(failure.text)
    infrastructure = failure.origin is FailureOrigin.INFRASTRUCTURE
    if infrastructure:
        crew.standing.failed(worker_id, failure.text)
    if run.cancel_reason:  # canceled: a failed attempt is not run again
        run._finish_canceled(run.cancel_reason)
        return
    run._failures += 1
    worth_it = retries.retryable(run.retry, failure)
    if worth_it and run._failures < run.retry.max_attempts:
        delay = run.retry.backoff_seconds(run._failures)
        logger.info(
            "task %s attempt %d on worker %s failed (%s); retrying in %.2fs",
            run.spec.task_id, number, worker_id, failure.text, delay, extra=run._log_fields(),
        )  # fmt: skip
        crew.scheduler.release(run)
        run.avoid = run.avoid | {worker_id}
        run.phase = Phase.BACKOFF
        state.append(retries.retrying(state, failure))
        state.worker_id = state.worker_address = ""  # waiting again: no worker has it
        run._journal.requeued(run.spec.task_id, number, run._failures)
        run._timers.start("backoff", delay, functools.partial(_retry, run))
        if crew.metrics is not None:
            crew.metrics.task_retried(run.capability)
        return
    if worth_it:  # it was worth retrying and ran out of attempts
        run.dead_lettered = True
        run._journal.dead_lettered(dead_letter(run.spec, run.retry, state.attempts, failure.text))
    run._finish(update if update is not None else retries.failed(state, failure))


def _retry(run: TaskRun) -> None:
    if run.phase is Phase.BACKOFF:
        run.phase = Phase.WAITING
        run._enqueue()
