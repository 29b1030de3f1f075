"""The one orchestrator contract.

`AsyncOrchestratorAPI` is what both `AsyncOrchestrator` (the engine in this process) and
`RemoteOrchestrator` (the engine in a `wa orchestrator` daemon) offer, with the same names, the same
signatures and the same coroutine-or-not for every call, so a script moves from one to the other by
changing the line that makes it. Both subclass it: the calls that are the same on both are written here
once, over two small hooks each backend fills in (`_submit`, `_page`). The blocking `Orchestrator` is
written once over this contract, and a test pins all three.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self, Unpack

from worker_abstraction.errors import InvalidParametersError, TaskNotFoundError
from worker_abstraction.exchanges import InputAnswer
from worker_abstraction.options import TaskOptionFields, TaskOptions, options_of, versioned
from worker_abstraction.orchestrator.core import batch
from worker_abstraction.orchestrator.core.gates import ConcurrencyLimit, LimitSet, RateLimit
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.workflow_handle import WorkflowHandle
from worker_abstraction.schedules.model import Schedule, ScheduleInfo
from worker_abstraction.types import (
    DeadLetter,
    LimitedQueue,
    TaskQuery,
    TaskQueryFields,
    TaskRecord,
    TaskStatus,
    WorkerHealth,
    WorkerInfo,
)
from worker_abstraction.workflows.canvas import Canvas
from worker_abstraction.workflows.model import WORKFLOW_CAPABILITY, Workflow
from worker_abstraction.workflows.records import WorkflowRecord, definition_of, listed_record
from worker_abstraction.workflows.rerun import rerun_params


class AsyncOrchestratorAPI(Protocol):
    """What every orchestrator offers. Each call behaves the same on the engine here and on a daemon."""

    async def start(self) -> None:
        """Get ready: watch the registry and resume stored tasks (embedded); nothing to do for a daemon."""
        ...

    async def aclose(self) -> None:
        """Stop following tasks and close every connection."""
        ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def workers(self) -> list[WorkerInfo]:
        """The live workers, with their latest heartbeat and load as the registry has them."""
        ...

    async def wait_for_workers(
        self, capability: str | None = None, *, count: int = 1, timeout_seconds: float = 10.0
    ) -> list[WorkerInfo]:
        """Wait until `count` workers (offering `capability`, if given) can take tasks: live, and proven to
        answer as workers.

        Raises:
            NoWorkerError: not enough such workers appeared in time.
        """
        ...

    async def worker_health(self) -> list[WorkerHealth]:
        """Every live worker as the orchestrator sees it: standing, circuit breaker, its tasks there."""
        ...

    async def queue_depths(self) -> dict[str, dict[int, int]]:
        """Tasks waiting for a worker, per capability and priority."""
        ...

    async def limits(self) -> LimitSet:
        """The rate and concurrency limits this orchestrator holds to."""
        ...

    async def set_limits(self, *limits: RateLimit | ConcurrencyLimit) -> LimitSet:
        """Set limits (each replaces its capability's limit of its kind) until the orchestrator stops.

        Raises:
            InvalidParametersError: a limit that cannot work, or that names a capability no live worker offers
                or a parameter its capability does not declare (all listed).
        """
        ...

    async def remove_limits(self, capability: str) -> LimitSet:
        """Drop a capability's rate and concurrency limits."""
        ...

    async def limited_queues(self) -> list[LimitedQueue]:
        """Waiting tasks held back by a rate or concurrency limit, per capability, and when they may start."""
        ...

    async def version_splits(self) -> dict[str, dict[str, int]]:
        """How each capability's tasks are split between its versions: capability -> {range: weight}."""
        ...

    async def set_version_split(self, capability: str, weights: Mapping[str, int]) -> dict[str, dict[str, int]]:
        """Split a capability's tasks between its versions by weight, e.g. `{"1.0.0": 90, "2.0.0": 10}` for a
        canary (empty: no split); until the orchestrator stops. Returns every split (see `core.splits`).

        Raises:
            InvalidParametersError: a range that does not parse or a weight out of range (all listed).
        """
        ...

    async def execute_task(
        self,
        capability: str,
        params: Mapping[str, Any] | None = None,
        *,
        options: TaskOptions | None = None,
        **overrides: Unpack[TaskOptionFields],
    ) -> AsyncTaskHandle:
        """Submit a task: it runs on a capable worker with a free slot, or waits in the queue for one.

        Returns at once, whatever the workers are doing: the handle is PENDING (with no worker) while the
        task waits; a worker's refusal comes out of `handle.result()` as TaskRejectedError.

        Args:
            capability: the capability to invoke.
            params: its arguments, checked against the capability's declared parameters before anything
                is queued; each value must be JSON-serializable.
            options: the task's options (`TaskOptions`); keyword arguments of the same names override them.
            **overrides: any `TaskOptions` field, e.g. `timeout_seconds=30, priority=5`.

        Returns:
            A handle that streams the task's updates and gives its result.

        Raises:
            InvalidParametersError: the arguments break the capability's declared parameters (all listed).
            InvalidTaskOptionsError: an option out of range (all listed).
            NoWorkerError: no live worker offers the capability, or none meets the task's requirements.
            QueueFullError: the queue is at its bound.
            TaskExistsError: the task id was used before (ids are never reused).
            OrchestratorUnavailableError: (daemon) it could not be reached; whether it accepted the task is
                unknown, so submit again with the same `idempotency_key` to be sure of exactly one task.
        """
        capability, chosen = versioned(capability, options_of(options, overrides))
        return await self._submit(capability, params, chosen)

    def execute_many(
        self,
        capability: str,
        params: Iterable[Mapping[str, Any]],
        *,
        max_pending: int = 1000,
        options: TaskOptions | None = None,
        **overrides: Unpack[TaskOptionFields],
    ) -> AsyncIterator[AsyncTaskHandle]:
        """Submit one task per params mapping and yield each handle as its task finishes.

        At most `max_pending` tasks are submitted and unfinished at once, so a million-item input never
        floods the queue. Options are those of `execute_task`; `handle.params` tells the tasks apart.

        Raises:
            The errors of `execute_task`, for the first task that hits them; tasks already submitted keep
            running.
        """
        capability, chosen = versioned(capability, options_of(options, overrides))
        return batch.execute_many(self._submit, capability, params, chosen, max_pending=max_pending)

    async def watch(self, task_id: str) -> AsyncTaskHandle:
        """A handle on any task the orchestrator knows, running or finished.

        Raises:
            TaskNotFoundError: the task is unknown (or no longer remembered).
        """
        ...

    async def cancel(self, task_id: str, reason: str = "") -> bool:
        """Cancel a task; see `AsyncTaskHandle.cancel`. False if it had already finished.

        Raises:
            TaskNotFoundError: the task is unknown.
        """
        ...

    async def provide_input(
        self, task_id: str, value: Any, *, request_id: str = "", answered_by: str = ""
    ) -> InputAnswer:
        """Answer the question a task waits on (INPUT_REQUIRED) with `value`; see `AsyncTaskHandle.provide_input`.
        `answered_by` names who answers (recorded with the answer; through a daemon with credentials on, the
        caller's principal is recorded instead).

        Raises:
            InvalidAnswerError: the value breaks the question's schema (every problem listed); it keeps waiting.
            TaskNotWaitingError: the task waits for no input, or for another question than `request_id`.
            TaskNotFoundError: the task is unknown.
        """
        ...

    async def claim(self, task_id: str, claimant: str = "", *, release: bool = False) -> TaskRecord:
        """Take a task waiting for input for `claimant` (a person at a human worker's inbox), so that nobody
        else answers it; `release=True` gives it back. Through a daemon with credentials on, the claimant is
        the caller's principal. Returns its record (`claimed_by`).

        Raises:
            TaskNotWaitingError: it waits for no input, or someone else holds it.
            TaskNotFoundError: the task is unknown.
        """
        ...

    async def approve(self, task_id: str, reason: str = "") -> TaskStatus:
        """Approve a task waiting for approval (APPROVAL_REQUIRED): it goes on. Returns its status after.

        Raises:
            TaskNotWaitingError: the task waits for no approval.
            TaskNotFoundError: the task is unknown.
        """
        ...

    async def deny(self, task_id: str, reason: str = "") -> TaskStatus:
        """Deny a task waiting for approval: it ends CANCELED, `reason` in its record.

        Raises:
            TaskNotWaitingError: the task waits for no approval.
            TaskNotFoundError: the task is unknown.
        """
        ...

    async def task(self, task_id: str) -> TaskRecord:
        """Where a task stands: status, latest update, every attempt; finished tasks too.

        Raises:
            TaskNotFoundError: the task is unknown (or no longer remembered).
        """
        ...

    async def tasks(self, **filters: Unpack[TaskQueryFields]) -> list[TaskRecord]:
        """Task records, most recently submitted first: `status=`, `capability=`, `limit=`, `offset=`."""
        records, _ = await self._page(TaskQuery.of(**filters))
        return records

    async def task_page(self, **filters: Unpack[TaskQueryFields]) -> tuple[list[TaskRecord], bool]:
        """As `tasks`, and whether more records follow this page."""
        return await self._page(TaskQuery.of(**filters))

    async def dead_letters(self) -> list[DeadLetter]:
        """Tasks that failed for good after retryable failures, oldest first, with their attempts."""
        ...

    async def requeue_dead_letter(self, task_id: str) -> AsyncTaskHandle:
        """Submit a dead-lettered task again: same capability, arguments and options, a new task id.

        Raises:
            TaskNotFoundError: no dead letter has this id.
        """
        ...

    async def purge_dead_letters(self, task_ids: Iterable[str] | None = None) -> int:
        """Drop dead letters (all, or those given); returns how many were dropped."""
        ...

    # ---- workflows (each is a task of its own, `WORKFLOW_CAPABILITY`: see `core.workflow_run`) ---------------

    async def run_workflow(
        self,
        workflow: Workflow | Canvas | Mapping[str, Any],
        *,
        workflow_id: str = "",
        idempotency_key: str = "",
        priority: int = 0,
        not_before: datetime | None = None,
        delay_seconds: float = 0.0,
    ) -> WorkflowHandle:
        """Run a workflow (a `Workflow`, a canvas such as `chain(...)`, or its file format as a dict).

        It is checked whole before anything runs, and stored before this returns; from then on the
        orchestrator runs it to its end, across its own restarts (and on another daemon sharing NATS).

        Args:
            workflow_id: its id (empty: a new one); its steps' tasks are `<workflow_id>.<step>`.
            idempotency_key: running again with a key already used returns the first run.
            priority: the priority of its steps' tasks where they set none.
            not_before: start no step before this instant (stored at once, visible as PENDING until then).
            delay_seconds: the same, counted from its acceptance.

        Raises:
            InvalidParametersError: every problem found: unknown capabilities, cycles, references to
                missing steps, literal parameters that break a capability's schema, bad options.
        """
        definition = definition_of_workflow(workflow)
        handle = await self.execute_task(
            WORKFLOW_CAPABILITY,
            {"workflow": definition},
            task_id=workflow_id,
            idempotency_key=idempotency_key,
            priority=priority,
            timeout_seconds=0,
            not_before=not_before,
            delay_seconds=delay_seconds,
        )
        return WorkflowHandle(handle)

    async def watch_workflow(self, workflow_id: str) -> WorkflowHandle:
        """A handle on a workflow run, running or ended.

        Raises:
            TaskNotFoundError: no workflow has this id.
        """
        handle = await self.watch(workflow_id)
        if handle.capability != WORKFLOW_CAPABILITY:
            raise TaskNotFoundError(workflow_id, "the workflows (it is a task)")
        return WorkflowHandle(handle)

    async def workflow(self, workflow_id: str) -> WorkflowRecord:
        """Where a workflow run stands: each step's status, output and error; the failed step.

        Raises:
            TaskNotFoundError: no workflow has this id.
        """
        return (await self.watch_workflow(workflow_id)).record()

    async def workflows(self, *, status: TaskStatus | None = None, limit: int = 100) -> list[WorkflowRecord]:
        """Workflow runs, most recent first (their steps as far as their task's latest update tells)."""
        return [listed_record(r) for r in await self.tasks(capability=WORKFLOW_CAPABILITY, status=status, limit=limit)]

    async def cancel_workflow(self, workflow_id: str, reason: str = "") -> bool:
        """Cancel a workflow run: its running steps are canceled, no other starts. False if it had ended.

        Raises:
            TaskNotFoundError: no workflow has this id.
        """
        await self.watch_workflow(workflow_id)
        return await self.cancel(workflow_id, reason)

    async def rerun_workflow(
        self, workflow_id: str, step: str, *, downstream: bool = True, new_workflow_id: str = ""
    ) -> WorkflowHandle:
        """Run an ended workflow again from `step`, keeping the outputs of its completed steps: a new run
        (its `rerun_of` names this one) in which `step` runs again, and with `downstream` every step that
        waits for it too (otherwise those that completed keep their outputs). Steps that never completed run.

        Raises:
            TaskNotFoundError: no workflow has this id.
            InvalidParametersError: it has no such step, or it has not ended.
        """
        handle = await self.watch_workflow(workflow_id)
        params = rerun_params(definition_of(handle.task.params), handle.record(), step, downstream=downstream)
        rerun = await self.execute_task(
            WORKFLOW_CAPABILITY,
            params,
            task_id=new_workflow_id,
            timeout_seconds=0,
        )
        return WorkflowHandle(rerun)

    # ---- schedules (see `schedules.model` and `core.timetable`) --------------------------------------------

    async def add_schedule(self, schedule: Schedule) -> ScheduleInfo:
        """Keep a schedule in the task home and fire it from now on (on every orchestrator sharing the home,
        each occurrence run once).

        Raises:
            InvalidParametersError: every problem of the schedule (name, timing, zone, policies, options).
            ScheduleExistsError: a schedule of this name exists.
            PermissionDeniedError: (daemon) the caller may not call its capability.
        """
        ...

    async def update_schedule(self, schedule: Schedule) -> ScheduleInfo:
        """Replace a schedule's definition (found by its name); how it went so far is kept.

        Raises:
            ScheduleNotFoundError: no schedule has this name.
        """
        ...

    async def schedule(self, name: str) -> ScheduleInfo:
        """A schedule: what it is, how it went, its next occurrence.

        Raises:
            ScheduleNotFoundError: no schedule has this name.
        """
        ...

    async def schedules(self) -> list[ScheduleInfo]:
        """Every schedule (a client of a daemon checking credentials: its own), by name."""
        ...

    async def pause_schedule(self, name: str) -> ScheduleInfo:
        """Fire nothing until resumed."""
        ...

    async def resume_schedule(self, name: str, *, run_now: bool = False) -> ScheduleInfo:
        """Fire again from now on: what passed while it was paused never runs; with `run_now`, one run now."""
        ...

    async def remove_schedule(self, name: str) -> bool:
        """Remove a schedule (its runs so far stay); False if there was none."""
        ...

    async def trigger_schedule(self, name: str) -> AsyncTaskHandle:
        """Run the schedule's task now, once, whatever its timing and policies."""
        ...

    # ---- what each backend fills in -----------------------------------------------------------------

    async def _submit(self, capability: str, params: Mapping[str, Any] | None, options: TaskOptions) -> AsyncTaskHandle:
        raise NotImplementedError

    async def _page(self, query: TaskQuery) -> tuple[list[TaskRecord], bool]:
        raise NotImplementedError


def definition_of_workflow(workflow: Workflow | Canvas | Mapping[str, Any]) -> dict[str, Any]:
    """A workflow in its file format (as a dict), whichever way it was given."""
    if isinstance(workflow, Canvas):
        workflow = workflow.workflow()
    if isinstance(workflow, Workflow):
        return workflow.to_dict()
    if isinstance(workflow, Mapping):
        return dict(workflow)
    raise InvalidParametersError(
        [f"a workflow is a Workflow, a canvas or its file format, got {type(workflow).__name__}"]
    )
