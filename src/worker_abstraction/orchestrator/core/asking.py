"""A run's questions and answers (human in the loop), on the orchestrator's side.

A handler asks through its worker (`ctx.request_input`): the attempt's INPUT_REQUIRED update carries the
question. While it waits, the run's own deadline (the backstop behind the worker's) stops, and starts again
with what was left once the worker says RUNNING; a question with a timeout gets a backstop of its own, so a
worker that goes silent cannot leave the task waiting for ever. An answer (`provide_input`) is checked
against the question's schema here first (a wrong one is refused with every problem listed, and the task
keeps waiting), then passed on to the worker, whose RUNNING update carries it, and who gave it, into the
task's record (`inputs_of`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from worker_abstraction import lifecycle, validation
from worker_abstraction.errors import InvalidAnswerError, TaskNotWaitingError
from worker_abstraction.exchanges import SUSPENDED, InputAnswer, InputExchange, InputRequest
from worker_abstraction.orchestrator.core import retries
from worker_abstraction.orchestrator.core.phase import Phase
from worker_abstraction.types import FailureOrigin, TaskFailure, TaskRecord, TaskStatus, TaskUpdate, WorkerInfo

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.run import TaskRun
    from worker_abstraction.orchestrator.edge.link import WorkerLinks

# The phases a run may wait for an answer in: its worker holds it (its dispatch's answer may not be heard yet),
# or its wait freed the slot.
_ASKED = frozenset({Phase.SENDING, Phase.RUNNING, Phase.ASKING})
INPUT_SLACK_SECONDS = 5.0  # past a question's deadline, how long its worker has to say it gave up waiting


def waiting_request(updates: Sequence[TaskUpdate]) -> InputRequest | None:
    """The question a task waits on now (None: it waits for no input)."""
    last = updates[-1] if updates else None
    return last.input_request if last is not None and last.status is TaskStatus.INPUT_REQUIRED else None


def on_update(run: TaskRun, update: TaskUpdate) -> None:
    """An attempt's update that starts or ends a wait for input (before it is appended)."""
    timers = run._timers
    if update.status is TaskStatus.INPUT_REQUIRED:
        left = timers.stop("deadline")
        if left is not None:
            run._deadline_left = left
        request = update.input_request
        if request is not None and request.deadline_ns:
            wait = request.deadline_ns / 1e9 - run._crew.clock.wall() + INPUT_SLACK_SECONDS
            timers.start("input", wait, lambda: _unanswered(run, request))
        metrics = run._crew.metrics
        if metrics is not None:
            metrics.input_asked(run.capability)
        if run._spans is not None and request is not None:
            run._spans.input_wait(request.request_id)
    elif run.state.status is TaskStatus.INPUT_REQUIRED:  # RUNNING again: answered, or the handler gave up
        timers.stop("input")
        if run._deadline_left is not None:
            timers.start("deadline", run._deadline_left, run._overran)
            run._deadline_left = None
        if run._spans is not None:
            run._spans.input_ended(update.input_answer.answered_by if update.input_answer is not None else None)
        metrics = run._crew.metrics
        if metrics is not None and update.input_answer is not None:
            asked = run.state.updates[-1].timestamp_ns
            waited = (update.timestamp_ns - asked) / 1e9 if asked and update.timestamp_ns else 0.0
            metrics.input_answered(run.capability, max(0.0, waited))


def _unanswered(run: TaskRun, request: InputRequest) -> None:
    """A question's deadline passed, and its worker did not say it stopped waiting (or none holds the task: a
    wait that freed the slot): the task fails."""
    if run.phase not in _ASKED or waiting_request(run.state.updates) is not request:
        return
    silent = ", and its worker went silent" if run.phase is Phase.RUNNING else ""
    message = f"nobody answered input request {request.request_id!r} in time{silent}"
    failure = TaskFailure(lifecycle.INPUT_TIMEOUT, message, FailureOrigin.TIMEOUT, retryable=False)
    run._finish(retries.failed(run.state, failure))


def suspended(run: TaskRun, update: TaskUpdate) -> None:
    """The handler's question freed its worker's slot: the attempt is over, and the task waits for the answer on
    no worker (ASKING), then goes back to the queue with every answer so far (see `worker.asking`)."""
    state, crew = run.state, run._crew
    crew.standing.answered(state.worker_id)
    run._timers.stop("deadline")
    crew.scheduler.release(run)
    run.phase = Phase.ASKING
    state.append(update)
    state.end_attempt(TaskStatus.INPUT_REQUIRED)
    state.worker_id = state.worker_address = ""  # no worker has it
    # Stored as "waiting for a worker": a daemon restarted meanwhile sends it again, and its handler asks again.
    run._journal.requeued(run.spec.task_id, state.attempt, run._failures)
    request = update.input_request
    if request is not None and request.deadline_ns:
        wait = request.deadline_ns / 1e9 - crew.clock.wall()
        run._timers.start("input", wait, lambda: _unanswered(run, request))
    if crew.metrics is not None:
        crew.metrics.input_asked(run.capability)
    if run._spans is not None:
        run._spans.attempt_ended(None, answer="suspended")
        if request is not None:
            run._spans.input_wait(request.request_id)


async def _answer_suspended(run: TaskRun, request: InputRequest, value_json: str, answered_by: str) -> InputAnswer:
    """The answer to a question whose wait freed the slot: stored with the task (with the answers before it),
    which goes back to the queue."""
    state = run.state
    answer = InputAnswer(request.request_id, value_json, answered_by, time.time_ns())
    given = json.loads(run._answers) if run._answers else {}  # (those of the runs before a restart too)
    given[request.request_id] = [value_json, answered_by, answer.answered_at_ns]
    answers = json.dumps(given)
    await run._journal.answered(run.spec.task_id, answers)
    if run.phase is not Phase.ASKING or waiting_request(state.updates) is not request:
        raise TaskNotWaitingError(run.spec.task_id, "was answered, canceled or ended while the answer was stored")
    run._answers = answers
    run._timers.stop("input")
    state.append(TaskUpdate(run.spec.task_id, TaskStatus.PENDING, timestamp_ns=answer.answered_at_ns,
                            input_answer=answer))  # fmt: skip
    if run._spans is not None:
        run._spans.input_ended(answered_by)
    metrics = run._crew.metrics
    if metrics is not None:
        asked = next((u.timestamp_ns for u in reversed(state.updates) if u.input_request is request), 0)
        metrics.input_answered(run.capability, max(0.0, (answer.answered_at_ns - asked) / 1e9) if asked else 0.0)
    run.phase = Phase.WAITING
    run._enqueue()
    return answer


async def provide_input(run: TaskRun, value_json: str, *, request_id: str, answered_by: str) -> InputAnswer:
    """Answer the question the task waits on: checked here, then passed on to its worker.

    Raises:
        TaskNotWaitingError: the task waits for no input, or for another question than `request_id`.
        InvalidAnswerError: the value breaks the question's schema (every problem listed).
    """
    state, task_id = run.state, run.spec.task_id
    request = waiting_request(state.updates) if run.phase in _ASKED else None
    if request is None:
        raise TaskNotWaitingError(task_id, f"waits for no input (it is {state.status.name})")
    if request_id and request_id != request.request_id:
        raise TaskNotWaitingError(task_id, f"waits for input {request.request_id!r}, not {request_id[:100]!r}")
    if run.claimed_by and run.claimed_by != (answered_by or "anyone"):
        raise TaskNotWaitingError(
            task_id, f"is claimed by {run.claimed_by[:100]!r}: only they answer it (or release it)"
        )
    problems = validation.answer_problems(request.schema_json, value_json)
    if problems:
        raise InvalidAnswerError(problems)
    if run.phase is Phase.ASKING:
        return await _answer_suspended(run, request, value_json, answered_by)
    link = run._crew.links.get(state.worker_address)
    await link.provide_input(task_id, request.request_id, value_json, answered_by, state.attempt)
    return InputAnswer(request.request_id, value_json, answered_by, time.time_ns())


def claim(run: TaskRun, claimant: str, *, release: bool, force: bool) -> None:
    """Take the task's pending question for `claimant` (a person at a human worker's inbox), or give it back.

    Raises:
        TaskNotWaitingError: it waits for no input, or another claimant holds it (`force`, an operator's
            release, lets go of anyone's).
    """
    task_id, holder = run.spec.task_id, run.claimed_by
    if run.phase not in _ASKED or waiting_request(run.state.updates) is None:
        raise TaskNotWaitingError(task_id, f"waits for no input (it is {run.state.status.name})")
    if release:
        if holder and holder != claimant and not force:
            raise TaskNotWaitingError(task_id, f"is held by {holder[:100]!r}: only they (or an operator) release it")
        run.claimed_by = ""
        return
    if holder and holder != claimant:
        raise TaskNotWaitingError(task_id, f"is claimed by {holder[:100]!r} already")
    run.claimed_by = claimant or "anyone"


async def answer_elsewhere(
    task_id: str,
    updates: Sequence[TaskUpdate],
    workers: Mapping[str, WorkerInfo],
    links: WorkerLinks,
    value_json: str,
    *,
    request_id: str,
    answered_by: str,
) -> InputAnswer:
    """Answer a task another orchestrator runs (a shared home): straight to the worker whose handler waits,
    which tells that orchestrator as it tells it everything.

    Raises:
        TaskNotWaitingError: it waits for no input (or another question), or on no worker this one sees.
        InvalidAnswerError: the value breaks the question's schema.
    """
    request = waiting_request(updates)
    if request is None:
        status = updates[-1].status.name if updates else "PENDING"
        raise TaskNotWaitingError(task_id, f"waits for no input (it is {status})")
    if request_id and request_id != request.request_id:
        raise TaskNotWaitingError(task_id, f"waits for input {request.request_id!r}, not {request_id[:100]!r}")
    problems = validation.answer_problems(request.schema_json, value_json)
    if problems:
        raise InvalidAnswerError(problems)
    asked = updates[-1]
    worker = workers.get(asked.worker_id)
    if SUSPENDED in asked.metadata or worker is None:
        where = "on no worker (its wait freed the slot)" if SUSPENDED in asked.metadata else "on a worker not seen here"
        raise TaskNotWaitingError(task_id, f"waits {where}: answer it through the orchestrator that runs it")
    await links.get(worker.address).provide_input(task_id, request.request_id, value_json, answered_by, asked.attempt)
    return InputAnswer(request.request_id, value_json, answered_by, time.time_ns())


def with_exchanges(record: TaskRecord, updates: Sequence[TaskUpdate]) -> TaskRecord:
    """`record` (as a shared home keeps it) with what the task's updates say of its questions and approval."""
    if not updates:
        return record
    last = updates[-1]
    status = last.status if last.status in (TaskStatus.INPUT_REQUIRED, TaskStatus.APPROVAL_REQUIRED) else record.status
    decided = next((u.approval for u in updates if u.approval is not None), None)
    required = record.approval_required or any(u.status is TaskStatus.APPROVAL_REQUIRED for u in updates)
    return dataclasses.replace(
        record, status=status, inputs=inputs_of(updates), approval=decided, approval_required=required
    )


def inputs_of(updates: Sequence[TaskUpdate]) -> tuple[InputExchange, ...]:
    """A task's questions and their answers, in order, from its updates."""
    exchanges: list[InputExchange] = []
    for update in updates:
        if update.input_request is not None:
            exchanges.append(InputExchange(update.input_request, None, update.timestamp_ns, update.attempt))
        elif update.input_answer is not None and exchanges and exchanges[-1].answer is None:
            last = exchanges[-1]
            if last.request.request_id == update.input_answer.request_id:
                exchanges[-1] = InputExchange(last.request, update.input_answer, last.asked_at_ns, last.attempt)
    return tuple(exchanges)
