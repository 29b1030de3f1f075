"""TaskRun: one task's whole life on the orchestrator, in one place.

Attempts, fencing, retry decisions, cancel, deadlines, completion and dead-lettering are all decided here.
Collaborators are handed down in one `Crew` (the scheduler, the links to workers, ...), and the task comes
in a `Hold` from its home (its spec, where to resume, the journal its facts go to, whether it lasts); none
of them calls back into a run except through the two narrow doors it opens: the scheduler tells it where
to go (`place`), and each attempt's `AttemptSink` passes on what its worker says.

Its phases and the moves between them are drawn beside `Phase` (crew.py). An attempt's way to its worker,
its worker's answer and the retry decision are in `attempts.py`; the cancel path is in `canceling.py`.

- **Attempt numbers** only grow, and each is reserved in the journal before it is sent, so no number ever
  runs on two workers, even across a crash. A dispatch the worker provably did not run (it was full) keeps
  its number: the refusal is journaled (the task waits again), and the number goes to another worker only
  once the fact naming that worker is stored, so a run resumed after a crash never looks for an attempt on
  a worker that refused it while the attempt runs elsewhere.
- **Fencing**: an update counts only if it belongs to the current attempt; anything else is a zombie's.
- **Retries** (which failures: `retries.py`): after the policy's back-off, on another worker if one can
  take it; when attempts run out after a retryable failure, the task is dead-lettered.
- **Cancel**: a waiting task never runs; a running one is canceled on its worker and ends CANCELED whatever
  its handler does. A worker that cannot cancel (seed-built) is not waited for: the task ends CANCELED here
  and the worker's late result is fenced off. A cancel nobody confirms ends the task after a while anyway.
- **Deadlines**: the worker enforces `timeout_seconds`; the run's own deadline comes a little later, so a
  silent worker cannot hold a task forever.
- **Holds**: a run holds its task by the `Hold` its home gave it. Once that is lost (another replica may
  hold the task now; a local home's holds never are) the run stops at once (`hand_over`): it writes,
  publishes and dispatches nothing more, and leaves its attempt on the worker to the new holder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from worker_abstraction import lifecycle
from worker_abstraction.exchanges import SUSPENDED, InputAnswer
from worker_abstraction.observability import tracing
from worker_abstraction.observability.task_spans import RunSpans
from worker_abstraction.orchestrator.core import approval, asking, attempts, canceling, retries
from worker_abstraction.orchestrator.core.admission import lowered
from worker_abstraction.orchestrator.core.canceling import CANCEL_CONFIRM_SECONDS as CANCEL_CONFIRM_SECONDS
from worker_abstraction.orchestrator.core.canceling import CANCEL_RESEND_SECONDS as CANCEL_RESEND_SECONDS
from worker_abstraction.orchestrator.core.clock import NamedTimers
from worker_abstraction.orchestrator.core.crew import Crew
from worker_abstraction.orchestrator.core.facts import ATTEMPT_BLOCK, Resumable
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Hold
from worker_abstraction.orchestrator.core.phase import Phase
from worker_abstraction.orchestrator.core.sessions import hard_until
from worker_abstraction.orchestrator.core.sinks import AttemptSinks
from worker_abstraction.orchestrator.core.state import TaskState, task_record
from worker_abstraction.orchestrator.edge.dispatch import AttemptSink
from worker_abstraction.types import (
    FailureOrigin,
    TaskFailure,
    TaskRecord,
    TaskStatus,
    TaskUpdate,
    WorkerInfo,
)
from worker_abstraction.versions import VersionRange

logger = logging.getLogger(__name__)

# The worker enforces the timeout itself; the run's own deadline comes a little later, so the worker's
# FAILED update wins when it can, and a silent worker still cannot hold the task forever.
DEADLINE_SLACK_SECONDS = 2.0


class TaskRun:
    """One task, from acceptance to its one terminal state."""

    # One per task the daemon holds, queued ones included: slots keep 100,000 of them small.
    __slots__ = (
        "_answers",
        "_crew",
        "_deadline_left",
        "_failures",
        "_hold",
        "_journal",
        "_max_output",
        "_queue_timeout",
        "_reserved",
        "_reuse_number",
        "_sent",
        "_sinks",
        "_spans",
        "_timers",
        "avoid",
        "cancel_reason",
        "capability",
        "claimed_by",
        "dead_lettered",
        "fairness_key",
        "gate",
        "handle",
        "phase",
        "pinned",
        "preferred_tags",
        "priority",
        "required_tags",
        "retry",
        "session_key",
        "session_moved",
        "session_until",
        "spec",
        "state",
        "versions",
    )  # fmt: skip

    def __init__(self, hold: Hold, crew: Crew, *, queue_timeout_seconds: float | None = None) -> None:
        spec = hold.spec
        options = spec.options
        self.spec = spec
        self._crew = crew
        # The task as its home gave it: lost, the run stops. None: a hold never lost (a local home's), not
        # kept (100,000 queued tasks each keep a little less).
        self._hold = hold if hold.may_be_lost else None
        self._max_output = hold.max_output_bytes
        self._journal = hold.journal
        self.state = TaskState(
            spec.task_id,
            spec.capability,
            spec.params,
            timeout_seconds=options.timeout_seconds,
            queue_timeout_seconds=queue_timeout_seconds,
        )
        self.handle = AsyncTaskHandle(self.state, self)
        # What the scheduler reads (Placeable).
        self.capability = spec.capability
        self.required_tags = lowered(options.required_tags)
        self.preferred_tags = lowered(options.preferred_tags)
        self.pinned = options.worker_id
        self.priority = options.priority
        self.fairness_key = options.fairness_key
        self.session_key = options.session_key
        self.session_moved = False  # the scheduler says so as it places it: the key's worker was gone
        self.session_until = hard_until(options, crew.clock.now())
        self.versions = VersionRange.parse(options.version)  # (empty: any version)
        gates = crew.scheduler.gates
        self.gate = (
            gates.key_of(spec.capability, options.fairness_key, spec.params) if gates.limited(spec.capability) else ""
        )
        self.avoid = _NO_WORKERS  # workers that failed it (one shared empty set until one does)
        self.retry = options.retry_policy or crew.retry_policy
        self.cancel_reason = ""
        self.dead_lettered = False
        self.phase = Phase.WAITING
        self._queue_timeout = queue_timeout_seconds
        self._failures = 0  # attempts that ran and failed: what the retry budget counts
        self._sent = 0  # the highest attempt number that may have been sent
        self._reserved = ATTEMPT_BLOCK  # attempt numbers up to this one are reserved in the journal
        self._reuse_number = False  # the next dispatch keeps the current number (the last one never ran)
        self._deadline_left: float | None = None  # the deadline's seconds left, stopped while it waits for input
        self.claimed_by = ""  # who holds its pending question (`asking.claim`)
        self._answers: str | None = None  # answers given while no worker held it (`asking`), sent with it
        self._timers = NamedTimers(crew.clock)
        self._sinks: AttemptSinks | None = None  # made with the first attempt: 100,000 queued tasks have none
        # None while tracing is off: then each hook below costs one check.
        self._spans = RunSpans(spec.task_id, spec.capability, spec.trace_context) if tracing.enabled() else None

    # ---- the way in -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Queue the task (its acceptance is stored; the scheduler had room for it); a delayed one, at its
        `not_before` (one timer on the clock: nothing runs while it waits); one that needs approval, once
        approved (`approval`)."""
        if approval.required(self):
            approval.wait(self)
            return
        self._begin()

    def _begin(self) -> None:
        not_before = self.spec.options.not_before
        if not_before is not None:
            wait = not_before.timestamp() - self._crew.clock.wall()
            if wait > 0:
                self.phase = Phase.DELAYED
                self._timers.start("delay", wait, self._due)
                return
        self._queue()

    def _due(self) -> None:
        if self.phase is not Phase.DELAYED or self._hold_lost():
            return
        not_before = self.spec.options.not_before
        early = not_before.timestamp() - self._crew.clock.wall() if not_before is not None else 0.0
        if early > 0:  # (a loop's timer may fire a little early: uvloop counts whole milliseconds)
            self._timers.start("delay", early + 0.001, self._due)
            return
        self.phase = Phase.WAITING
        self._queue()

    def _queue(self) -> None:
        self._enqueue()
        if self._queue_timeout is not None and self.phase is Phase.WAITING:
            self._timers.start("queue", self._queue_timeout, self._queue_expired)

    def resume(self, found: Resumable) -> None:
        """Carry on a task read back from the store after a restart."""
        self.state.resumed = True
        # Any number up to the reservation may have been sent before the crash: the next one is above it.
        self._sent = max(found.attempt, found.reserved)
        self._reserved = found.reserved
        self._failures, self.cancel_reason = found.failures, found.cancel_reason
        self._answers = found.answers or None
        self.state.attempt = found.attempt
        if found.worker_id:
            # It may still run there: follow it from its first update. A worker that lost it answers
            # NOT_FOUND and the attempt is retried under a new number like any lost one.
            self._crew.scheduler.adopt(self, found.worker_id)
            # Its start is when it was sent, before the restart (not now): its record keeps the run's length.
            sent_at = datetime.fromtimestamp(found.dispatched_at, UTC) if found.dispatched_at > 0 else None
            self.state.begin_attempt(found.attempt, found.worker_id, found.worker_address, started_at=sent_at)
            self.phase = Phase.RUNNING
            if self._spans is not None:
                self._spans.resumed(found.attempt, found.worker_id)
            self._start_deadline()
            sink = self._open_sink(found.attempt, found.worker_address)
            self._crew.links.get(found.worker_address).follow(sink)
            if self.cancel_reason:  # asked for before the restart: carried out now
                self._spawn(canceling.cancel_on_worker(self), "resend-cancel")
        elif self.cancel_reason:
            self._finish_canceled(self.cancel_reason)
        else:
            self.start()

    def place(self, worker: WorkerInfo) -> None:
        """The scheduler reserved a slot on `worker` for this task: send it there."""
        attempts.place(self, worker)

    def deny(self, error: Exception) -> None:
        """No worker that could run it takes tasks from this orchestrator (the scheduler took it out of line)."""
        if self.phase is Phase.WAITING:
            failure = TaskFailure(type(error).__name__, str(error), FailureOrigin.REJECTED, retryable=False)
            self._finish(retries.failed(self.state, failure))

    def cancel_soon(self, reason: str) -> None:
        """Cancel it without waiting (a concurrency limit's strategy: see `gates`)."""
        self._spawn(self.cancel(reason), f"cancel-{self.spec.task_id}")

    async def cancel(self, reason: str) -> bool:
        """Cancel the task (see the module docstring); False if it had already finished."""
        return await canceling.cancel(self, reason)

    # ---- what workers say (through an attempt's sink) ------------------------------------------------------

    def done(self) -> bool:
        """Whether the run is over here: the task ended, or its hold was lost."""
        return self.phase is Phase.DONE or self.phase is Phase.HANDED_OVER

    def is_current(self, number: int) -> bool:
        return self.state.attempt == number and self.phase in (Phase.SENDING, Phase.RUNNING)

    async def provide_input(self, value_json: str, *, request_id: str = "", answered_by: str = "") -> InputAnswer:
        """Answer the question the task waits on (see `asking.provide_input`)."""
        return await asking.provide_input(self, value_json, request_id=request_id, answered_by=answered_by)

    def claim(self, claimant: str, *, release: bool = False, force: bool = False) -> None:
        """Take (or give back) the task's pending question, so nobody else answers it (see `asking.claim`)."""
        asking.claim(self, claimant, release=release, force=force)

    def decide(self, approved: bool, decided_by: str = "", reason: str = "") -> None:
        """Approve a task waiting for approval (it goes on), or deny it (it ends CANCELED): see `approval`."""
        (approval.approve if approved else approval.deny)(self, decided_by, reason)

    def on_update(self, number: int, update: TaskUpdate) -> None:
        state = self.state
        if not self.is_current(number) or (update.attempt and update.attempt != number):
            state.stale_updates += 1  # fenced: an attempt given up on still talks
            return
        if self._hold_lost():
            return
        # Seed workers do not number updates (sequence 0); ours never repeat one after a resume.
        if update.sequence:
            if update.sequence <= state.last_sequence:
                return
            state.last_sequence = update.sequence
        if not lifecycle.allowed(state.status if state.updates else TaskStatus.UNKNOWN, update.status):
            state.illegal_updates += 1
            return
        if not update.is_terminal:
            if update.chunk is not None and self._crew.metrics is not None:
                self._crew.metrics.chunk_streamed(self.capability)
            if update.status is TaskStatus.INPUT_REQUIRED and update.metadata and SUSPENDED in update.metadata:
                asking.suspended(self, update)
                return
            if update.status is TaskStatus.INPUT_REQUIRED or state.status is TaskStatus.INPUT_REQUIRED:
                asking.on_update(self, update)
            state.append(update)
            return
        worker_id = state.worker_id
        if update.status is TaskStatus.COMPLETED and self._max_output is not None:
            size = len(update.output_json.encode())
            if size > self._max_output:  # the home could not keep it: failed, not half-finished
                self._crew.standing.answered(worker_id)
                problem = (
                    f"the output takes {size:,} bytes as JSON; the task store keeps at most {self._max_output:,} "
                    "for this task (with its arguments)"
                )
                failure = TaskFailure("OutputTooLarge", problem, FailureOrigin.HANDLER, retryable=False)
                attempts.failed(self, failure, None)
                return
        if update.status is TaskStatus.COMPLETED or (update.status is TaskStatus.CANCELED and self.cancel_reason):
            self._crew.standing.answered(worker_id)
            self._finish(update)
        elif update.status is TaskStatus.CANCELED:
            # Nobody asked: the worker gave the task up (it is stopping). That is the worker's failure.
            given_up = update.failure or TaskFailure(lifecycle.CANCELED, update.error_message)
            failure = TaskFailure(given_up.type, given_up.message, FailureOrigin.INFRASTRUCTURE, retryable=True)
            attempts.failed(self, failure, None)
        else:
            self._crew.standing.answered(worker_id)  # it answered: the task failed, not the worker
            failure = update.failure or TaskFailure("Error", update.error_message)
            attempts.failed(self, failure, update)

    def on_lost(self, number: int, reason: str) -> None:
        if not self.is_current(number) or self._hold_lost():
            return
        message = f"attempt {number} on worker {self.state.worker_id}: {reason}"
        attempts.failed(self, TaskFailure(lifecycle.WORKER_LOST, message, FailureOrigin.INFRASTRUCTURE), None)

    def worker_left(self, worker_id: str, reason: str) -> None:
        """The registry says the worker left: its attempt here will never report back."""
        if self.phase in (Phase.SENDING, Phase.RUNNING) and self.state.worker_id == worker_id:
            self.on_lost(self.state.attempt, f"the worker left the registry ({reason})")

    def hand_over(self, reason: str) -> None:
        """The task's hold was lost (another replica may hold it now): stop at once.

        Nothing more is written, published, dispatched or canceled for the task from here: no terminal
        update, no record. Its attempt on a worker, if any, is left running for the new holder to follow.
        """
        if self.done():
            return
        self.phase = Phase.HANDED_OVER
        self._timers.stop_all()
        if self._sinks is not None:
            self._sinks.forget_all()
        self._crew.scheduler.discard(self)
        if self._spans is not None:
            self._spans.finished(Phase.HANDED_OVER.name, reason)
        self._let_go()
        logger.warning("task %s: %s; its run here stops (another replica carries it on)", self.spec.task_id, reason,
                       extra=self._log_fields())  # fmt: skip

    # ---- the record --------------------------------------------------------------------------------------

    def record(self) -> TaskRecord:
        state = self.state
        last = state.updates[-1] if state.updates else None
        return task_record(self.spec, state.status, attempts=state.attempts, last_update=last,
                           dead_lettered=self.dead_lettered, cancel_reason=self.cancel_reason,
                           inputs=asking.inputs_of(state.updates), approval=approval.decision_of(self),
                           approval_required=approval.required(self), claimed_by=self.claimed_by)  # fmt: skip

    # ---- inside ------------------------------------------------------------------------------------------

    def _queue_expired(self) -> None:
        # Only a task still waiting expires; one that reached a worker runs under its execution deadline.
        if self.phase is Phase.WAITING and self._crew.scheduler.withdraw(self):
            waited = self._queue_timeout or 0.0
            message = f"waited {waited:g}s in the queue and no worker took it"
            failure = TaskFailure(lifecycle.QUEUE_TIMEOUT, message, FailureOrigin.TIMEOUT, retryable=False)
            self._finish(retries.failed(self.state, failure))

    def _start_deadline(self) -> None:
        timeout = self.spec.options.timeout_seconds
        if timeout > 0:
            self._timers.start("deadline", timeout + DEADLINE_SLACK_SECONDS, self._overran)

    def _overran(self) -> None:
        # The worker should have ended the task at its deadline and said nothing: it may be a zombie.
        if self.phase not in (Phase.SENDING, Phase.RUNNING):
            return
        worker = self.state.worker_id
        self._crew.standing.suspect(worker, "let a task pass its deadline without a word")
        timeout = self.spec.options.timeout_seconds
        message = f"task did not finish within {timeout:g}s and worker {worker} went silent"
        failure = TaskFailure(lifecycle.DEADLINE_EXCEEDED, message, FailureOrigin.TIMEOUT, retryable=False)
        self._finish(retries.failed(self.state, failure))

    def _finish_canceled(self, reason: str) -> None:
        self._finish(retries.canceled(self.state, reason))

    def _finish(self, update: TaskUpdate) -> None:
        if self.done() or self._hold_lost():
            return
        self.phase = Phase.DONE
        self._timers.stop_all()
        if self._sinks is not None:
            self._sinks.forget_all()
        self._crew.scheduler.discard(self)
        self.state.append(update)
        if self._spans is not None:
            failed = update.status is not TaskStatus.COMPLETED
            self._spans.finished(update.status.name, (update.error_message or update.status.name) if failed else None)
        self._crew.finished.finished(self)
        self._journal.finished(self)
        metrics = self._crew.metrics
        if metrics is not None:
            metrics.task_finished(self.capability, update.status, self.spec.created_at_ns, self.state.attempts)
        self._let_go()

    def _let_go(self) -> None:
        """Drop what only a running task needs: an engine keeps its latest finished runs for late watchers
        (`TaskIndex`), and each would otherwise keep its hold (with its home's facts and callbacks) and its
        attempts' sinks alive too, for the cycle collector to walk again and again."""
        if self._hold is not None:
            self._hold.ended()
            self._hold = None
        self._sinks = None

    def _hold_lost(self) -> bool:
        """True (and the run handed over) once its hold is lost: nothing more may be done on its behalf."""
        if self._hold is None or self._hold.alive():
            return False
        self.hand_over("its hold was lost")
        return True

    def _enqueue(self) -> None:
        if self._spans is not None:  # before the scheduler is asked: it may place the task at once
            self._spans.waiting()
        self._crew.scheduler.enqueue(self)

    def _log_fields(self) -> dict[str, str]:
        spans = self._spans
        if spans is None:
            return {"task_id": self.spec.task_id}
        return {"task_id": self.spec.task_id, "trace_id": spans.trace_id}

    def _open_sink(self, attempt: int, address: str) -> AttemptSink:
        if self._sinks is None:
            self._sinks = AttemptSinks(self, self._crew.links)
        return self._sinks.open(attempt, address)

    def _spawn(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        background = self._crew.background
        task = asyncio.get_running_loop().create_task(work, name=name)
        background.add(task)
        task.add_done_callback(background.discard)


_NO_WORKERS: frozenset[str] = frozenset()
