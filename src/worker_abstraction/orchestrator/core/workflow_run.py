"""WorkflowRun: a workflow, run by the engine that holds it, its steps submitted as tasks of their own.

A workflow is stored as a task of the capability `WORKFLOW_CAPABILITY` (its definition in its arguments), so
it lives wherever tasks live, on every home: accepted once (its idempotency key owned by the home), held by
one engine at a time, taken over by another when the hold is lost, resumed after a restart. What it stores
beyond that is its steps' tasks, each under an id made from the workflow's and the step's names
(`step_task_id`): a step is submitted under that id, and an id taken before means the step was submitted
already (before a crash, or by the engine that held the workflow before), so it is followed instead. A
resumed workflow thus finds every step where it stands, and no completed step runs again: nothing per step
is stored but the step's own task.

Each change of a step's status is an update of the workflow's task (RUNNING, its metadata naming the step,
its status and its tasks), numbered and resumable like any task's; the terminal update's output is the
workflow's record (every step's status, output and error, the failed step). A failing step cancels the
running ones and starts no other (`fail_fast`), or lets the branches that do not depend on it go on; then
the `on_failure` step runs, once (its id is fixed too), and the workflow fails naming the step.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from worker_abstraction.errors import TaskNotWaitingError, WorkerAbstractionError
from worker_abstraction.exchanges import InputAnswer
from worker_abstraction.orchestrator.core.clock import Clock, LoopClock, Timer
from worker_abstraction.orchestrator.core.facts import Resumable
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Hold
from worker_abstraction.orchestrator.core.phase import Phase
from worker_abstraction.orchestrator.core.state import TaskState, task_record
from worker_abstraction.orchestrator.core.workflow_steps import StepFailed, Steps, StepTasks, start_order
from worker_abstraction.types import FailureOrigin, TaskFailure, TaskRecord, TaskStatus, TaskUpdate
from worker_abstraction.workflows.inputs import UnresolvedInputError, resolve
from worker_abstraction.workflows.model import Step, Workflow
from worker_abstraction.workflows.records import (
    CANCELED,
    COMPLETED,
    FAILED,
    RUNNING,
    SKIPPED,
    WAITING,
    StepRecord,
    WorkflowRecord,
    step_task_id,
)

logger = logging.getLogger(__name__)

ENDED = frozenset((COMPLETED, SKIPPED, FAILED, CANCELED))  # a step's statuses once it will not run (again)
UNLUCKY = frozenset((FAILED, CANCELED, SKIPPED))  # a parent in one of these: its children are skipped


class RunMetrics(Protocol):
    def run_finished(self, capability: str, status: TaskStatus, submitted_at_ns: int) -> None: ...


class Finished(Protocol):
    def finished(self, run: Any) -> None: ...


class WorkflowRun:
    """One workflow held by this engine, from its start (or where it stood) to its one terminal state."""

    def __init__(
        self,
        hold: Hold,
        steps: Steps,
        finished: Finished,
        background: set[asyncio.Task[Any]],
        metrics: RunMetrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        spec = hold.spec
        self._metrics = metrics
        self._clock = clock or LoopClock()
        self._delay: Timer | None = None  # a delayed workflow's start
        self.spec = spec
        self.capability = spec.capability
        self._hold = hold if hold.may_be_lost else None
        self._journal = hold.journal
        self._steps = steps
        self._finished = finished
        self._background = background
        self.workflow = Workflow.from_dict(spec.params.get("workflow"))
        self._kept: dict[str, Any] = dict(spec.params.get("kept") or {})
        self._rerun_of = str(spec.params.get("rerun_of") or "")
        self.state = TaskState(spec.task_id, spec.capability, spec.params, timeout_seconds=0)
        self.handle = AsyncTaskHandle(self.state, self)
        self.phase = Phase.WAITING
        self.cancel_reason = ""
        self.dead_lettered = False
        self._canceling = asyncio.Event()
        self._driver: asyncio.Task[None] | None = None
        self._records: dict[str, StepRecord] = {
            step.name: StepRecord(step.name, step.capability, WAITING) for step in self.workflow.steps
        }
        self._outputs: dict[str, Any] = {}
        self._step_tasks: dict[str, list[str]] = {}  # step -> the task ids submitted for it (live ones)
        self._tasks = StepTasks(spec, steps, self._started)
        # What `_set` keeps up to date as steps change, so that a change costs the same in a long workflow as in
        # a short one: how many steps ended (the progress), and for each step how many of its parents have not
        # completed and how many failed, were canceled or skipped (whether it may start, or never will).
        self._ended = 0
        self._children: dict[str, list[str]] = {}
        self._not_completed: dict[str, int] = {}
        self._unlucky: dict[str, int] = dict.fromkeys(self._records, 0)
        for step in self.workflow.steps:
            parents = step.parents
            self._not_completed[step.name] = len(parents)
            for parent in parents:
                self._children.setdefault(parent, []).append(step.name)

    # ---- the way in (what the engine calls) ---------------------------------------------------------------

    def start(self) -> None:
        """Drive the workflow; a delayed one from its `not_before` on (one timer: nothing runs meanwhile)."""
        not_before = self.spec.options.not_before
        wait = not_before.timestamp() - self._clock.wall() if not_before is not None else 0.0
        if wait > 0:
            self.phase = Phase.DELAYED
            self._delay = self._clock.call_later(wait, self._due)
        else:
            self._drive()

    def resume(self, found: Resumable) -> None:
        self.state.resumed = True
        if found.cancel_reason:
            self.cancel_reason = found.cancel_reason
            self._canceling.set()
            self._drive()
        else:
            self.start()

    def done(self) -> bool:
        return self.phase is Phase.DONE or self.phase is Phase.HANDED_OVER

    async def provide_input(self, value_json: str, *, request_id: str = "", answered_by: str = "") -> InputAnswer:
        """A workflow asks nothing itself: its steps (tasks of their own) may."""
        raise TaskNotWaitingError(self.spec.task_id, "is a workflow: answer the step task that asks, by its id")

    async def cancel(self, reason: str) -> bool:
        """Cancel the workflow: its running steps are canceled, no new one starts. False if it had ended."""
        if self.done():
            return False
        if not self.cancel_reason:
            self.cancel_reason = reason
            await self._journal.cancel_requested(self.spec.task_id, reason)
            self._canceling.set()
        if self.phase is Phase.DELAYED:  # none of its steps started: it ends here
            self._stop_delay()
            self._finish(TaskStatus.CANCELED, self.cancel_reason)
        return not self.done() or self.state.status is TaskStatus.CANCELED

    def hand_over(self, reason: str) -> None:
        """The workflow's hold was lost: stop driving it (its steps go on; the next holder follows them)."""
        if self.done():
            return
        self.phase = Phase.HANDED_OVER
        self._stop_delay()
        if self._driver is not None:
            self._driver.cancel()
        if self._hold is not None:
            self._hold.ended()
            self._hold = None
        logger.warning("workflow %s: %s; its run here stops", self.spec.task_id, reason)

    def worker_left(self, worker_id: str, reason: str) -> None:
        """(Its steps' runs hear of it themselves.)"""

    def record(self) -> TaskRecord:
        state = self.state
        last = state.updates[-1] if state.updates else None
        return task_record(self.spec, state.status, last_update=last, cancel_reason=self.cancel_reason)

    def workflow_record(self) -> WorkflowRecord:
        failed = next((r for r in self._records.values() if r.status == FAILED), None)
        return WorkflowRecord(
            workflow_id=self.spec.task_id,
            name=self.workflow.name,
            status=self.state.status,
            steps=dict(self._records),
            failed_step=failed.name if failed is not None else "",
            error=failed.error if failed is not None else "",
            rerun_of=self._rerun_of,
        )

    # ---- driving ---------------------------------------------------------------------------------------------

    def _due(self) -> None:
        not_before = self.spec.options.not_before
        early = not_before.timestamp() - self._clock.wall() if not_before is not None else 0.0
        if early > 0:  # (a loop's timer may fire a little early: uvloop counts whole milliseconds)
            self._delay = self._clock.call_later(early + 0.001, self._due)
        else:
            self._drive()

    def _stop_delay(self) -> None:
        if self._delay is not None:
            self._delay.cancel()
            self._delay = None

    def _drive(self) -> None:
        if self.done():
            return
        self._delay = None
        self.phase = Phase.RUNNING
        self._driver = asyncio.get_running_loop().create_task(self._run(), name=f"workflow {self.spec.task_id}")
        self._background.add(self._driver)
        self._driver.add_done_callback(self._background.discard)

    def _alive(self) -> bool:
        return self._hold is None or self._hold.alive()  # (a loss reaches `hand_over` through the engine)

    async def _run(self) -> None:
        try:
            await self._go()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # (a bug of ours must not leave the workflow RUNNING for good)
            logger.exception("workflow %s stopped on an unexpected error", self.spec.task_id)
            with contextlib.suppress(Exception):
                await self._cancel_running(f"the workflow stopped: {error!r}"[:500])
            self._finish(TaskStatus.FAILED, f"the workflow stopped on an unexpected error: {error!r}"[:1000])

    async def _go(self) -> None:
        self._say(None)
        deadline = self.workflow.deadline_seconds or None
        failure: tuple[str, str] | None = None
        try:
            async with asyncio.timeout(deadline):
                failure = await self._run_steps()
        except TimeoutError:
            await self._cancel_running(f"the workflow's deadline ({deadline:g} s) passed")
            failure = ("", f"the workflow did not finish within its deadline of {deadline:g} s")
        if self._canceling.is_set():
            self._finish(TaskStatus.CANCELED, self.cancel_reason or "canceled")
            return
        if failure is not None and self.workflow.failure_step is not None:
            await self._on_failure(*failure)
        if failure is None:
            self._finish(TaskStatus.COMPLETED, "")
        else:
            step, error = failure
            self._finish(TaskStatus.FAILED, f"step {step!r} failed: {error}" if step else error)

    async def _run_steps(self) -> tuple[str, str] | None:
        """Run the steps, each once its parents completed; the first failure (step, error), or None."""
        for name, output in self._kept.items():  # outputs kept from the run this one reruns
            if name in self._records:
                self._outputs[name] = output
                self._set(name, COMPLETED, output=output, kept=True)
        pending = [step for step in start_order(self.workflow) if step.name not in self._outputs]
        running: dict[asyncio.Task[Any], Step] = {}
        failure: tuple[str, str] | None = None
        canceling = asyncio.ensure_future(self._canceling.wait())
        try:
            while True:
                if self._canceling.is_set():
                    await self._cancel_running(self.cancel_reason or "the workflow was canceled", running)
                    for step in pending:
                        self._set(step.name, SKIPPED, error="the workflow was canceled before it could start")
                    return None
                blocked = failure is not None and self.workflow.fail_fast
                waiting: list[Step] = []
                for step in [] if blocked else pending:
                    if not self._not_completed[step.name]:  # every parent completed
                        running[self._tasks.launch(step, self._outputs)] = step
                    elif self._unlucky[step.name]:  # (a skip here reaches the steps after it in this same pass)
                        self._set(step.name, SKIPPED, error="a step it waits for did not complete")
                    else:
                        waiting.append(step)
                if not blocked:
                    pending = waiting
                if not running:
                    break
                done, _ = await asyncio.wait([*running, canceling], return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    step_done = running.pop(finished, None)
                    if step_done is None:
                        continue
                    status, text = self._record_end(step_done, finished)
                    if status == COMPLETED:
                        continue
                    if failure is None:
                        failure = (step_done.name, text)
                        if self.workflow.fail_fast:
                            failed = await self._cancel_running(f"step {step_done.name!r} failed", running)
                            if status != FAILED and failed is not None:  # (a step that failed, not one canceled)
                                failure = failed
                    elif status == FAILED and self._records[failure[0]].status != FAILED:
                        failure = (step_done.name, text)
            for step in pending:
                self._set(step.name, SKIPPED, error="the workflow failed before it could start")
            return failure
        finally:
            canceling.cancel()
            for task in running:
                task.cancel()

    def _record_end(self, step: Step, finished: asyncio.Task[Any]) -> tuple[str, str]:
        """Record how a step's coroutine ended: COMPLETED with its output, or its status and error."""
        error = finished.exception()
        if error is None:
            self._outputs[step.name] = finished.result()
            self._set(step.name, COMPLETED, output=finished.result())
            return COMPLETED, ""
        status, text = (error.status, error.error) if isinstance(error, StepFailed) else (FAILED, str(error))
        self._set(step.name, status, error=text)
        return status, text

    async def _cancel_running(
        self, reason: str, running: Mapping[asyncio.Task[Any], Step] | None = None
    ) -> tuple[str, str] | None:
        """Cancel every step task submitted and not ended; wait for the step coroutines to see it. Each step
        ends as its task did: one that had already completed or failed (a run carried on after a restart
        may hear a sibling's cancel first) keeps that outcome. The first step found FAILED, or None."""
        for task_ids in list(self._step_tasks.values()):
            for task_id in task_ids:
                with contextlib.suppress(WorkerAbstractionError):
                    await self._steps.cancel(task_id, reason)
        failed: tuple[str, str] | None = None
        if running:
            await asyncio.wait(list(running), timeout=5)
            for task, step in list(running.items()):
                if self._records[step.name].status != RUNNING or not task.done() or task.cancelled():
                    continue
                status, text = self._record_end(step, task)
                if status == FAILED and failed is None:
                    failed = (step.name, text)
        for step_name in list(self._step_tasks):
            if self._records[step_name].status == RUNNING:
                self._set(step_name, CANCELED, error=reason)
        return failed

    async def _on_failure(self, failed_step: str, error: str) -> None:
        step = self.workflow.failure_step
        assert step is not None
        replaced = self._records.get(step.name)
        self._ended -= replaced is not None and replaced.status in ENDED
        self._records[step.name] = StepRecord(step.name, step.capability, WAITING)
        task_id = step_task_id(self.spec.task_id, step.name)
        try:
            params = resolve(step.params, self._outputs, {"step": failed_step, "error": error})
        except UnresolvedInputError as problem:
            self._set(step.name, FAILED, error=f"its parameters cannot be made: {problem}")
            return
        self._started(step.name, [task_id])
        try:
            output = await self._tasks.task(step, task_id, params)
        except StepFailed as failed:
            self._set(step.name, failed.status, error=failed.error)
        else:
            self._set(step.name, COMPLETED, output=output)

    def _started(self, name: str, task_ids: list[str]) -> None:
        self._step_tasks[name] = task_ids
        self._set(name, RUNNING, tasks=len(task_ids))

    # ---- what it says ----------------------------------------------------------------------------------------

    def _set(self, name: str, status: str, *, output: Any = None, error: str = "", tasks: int | None = None,
             kept: bool = False) -> None:  # fmt: skip
        record = self._records[name]
        if status != record.status:
            self._ended += (status in ENDED) - (record.status in ENDED)
            for child in self._children.get(name, ()):
                self._not_completed[child] += (record.status == COMPLETED) - (status == COMPLETED)
                self._unlucky[child] += (status in UNLUCKY) - (record.status in UNLUCKY)
        self._records[name] = dataclasses.replace(
            record,
            status=status,
            output=output if status == COMPLETED else record.output,
            error=error,
            tasks=record.tasks if tasks is None else tasks,
            kept=kept or record.kept,
        )
        if status != RUNNING:
            self._step_tasks.pop(name, None)
        self._say(self._records[name])

    def _say(self, step: StepRecord | None) -> None:
        if self.done() or not self._alive():
            return
        metadata = {"workflow": self.workflow.name}
        if step is not None:
            metadata |= {"step": step.name, "step_status": step.status, "tasks": str(step.tasks)}
            if step.error:
                metadata["error"] = step.error[:1000]
        self.state.append(
            TaskUpdate(
                task_id=self.spec.task_id,
                status=TaskStatus.RUNNING,
                progress=self._ended / max(1, len(self._records)),
                progress_message=f"step {step.name} {step.status}" if step is not None else "started",
                metadata=metadata,
            )
        )

    def _finish(self, status: TaskStatus, error: str) -> None:
        if self.done() or not self._alive():
            return
        record = self.workflow_record()
        output = json.dumps(record.to_dict(), default=str)
        failure = None
        if status is TaskStatus.FAILED:
            failure = TaskFailure("WorkflowFailed", error, FailureOrigin.HANDLER, retryable=False)
        elif status is TaskStatus.CANCELED:
            failure = TaskFailure("Canceled", error, FailureOrigin.CANCELED, retryable=False)
        self.phase = Phase.DONE
        self.state.append(
            TaskUpdate(
                task_id=self.spec.task_id,
                status=status,
                output_json=output,
                error_message=error,
                failure=failure,
                metadata={"workflow": self.workflow.name},
            )
        )
        self._finished.finished(self)
        self._journal.finished(self)
        if self._metrics is not None:
            self._metrics.run_finished(self.capability, status, self.spec.created_at_ns)
        if self._hold is not None:
            self._hold.ended()
            self._hold = None
