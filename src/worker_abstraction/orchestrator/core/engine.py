"""The engine: the orchestrator's logic without any gRPC of its own (the registry's `service` layer, here).

It accepts tasks into their home (admission first: size, capability, requirements, room in the queue),
turns each task the home holds for it into a `TaskRun` (one path, whatever the home), answers queries
and cancels, and manages dead letters through the home. A task's life itself is its `TaskRun`'s business;
where it is stored, who else may run it and how idempotency keys are kept is its home's (see `homes`).
`AsyncOrchestrator` wires an engine up in a program; `OrchestratorServicer` serves one over the wire.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from worker_abstraction import limits
from worker_abstraction.codec import encode_params, payload_bytes, short
from worker_abstraction.errors import InvalidParametersError, TaskNotFoundError
from worker_abstraction.observability.tracing import NO_TRACE, TraceContext
from worker_abstraction.options import MAX_ID_LENGTH, TaskOptions
from worker_abstraction.orchestrator.core import asking, expiry
from worker_abstraction.orchestrator.core.admission import Wanted, admit
from worker_abstraction.orchestrator.core.crew import Crew
from worker_abstraction.orchestrator.core.engine_hitl import HumanInTheLoop
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Acceptance, Accepted, Hold, TaskHome
from worker_abstraction.orchestrator.core.identity import check_capability, identified, new_task_id
from worker_abstraction.orchestrator.core.records import Run, TaskIndex, newest_first
from worker_abstraction.orchestrator.core.retention import Retention
from worker_abstraction.orchestrator.core.run import TaskRun
from worker_abstraction.orchestrator.core.workflow_run import WorkflowRun
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.types import (
    CapabilitySpec,
    DeadLetter,
    TaskQuery,
    TaskRecord,
    TaskSpec,
    WorkerHealth,
    WorkerInfo,
)
from worker_abstraction.workflows.model import WORKFLOW_CAPABILITY, InvalidWorkflowError, Workflow

logger = logging.getLogger(__name__)


class Engine(HumanInTheLoop):
    """Accepts, runs, tracks and cancels tasks that live in a `TaskHome`.

    Args:
        crew: the collaborators every run works with.
        directory: the live view of workers.
        home: where tasks live (`homes.local.LocalHome`, `homes.nats.partitioned.PartitionedHome`).
        index: the runs of this engine (live, and recently finished).
        queue_timeout_seconds: default limit on how long a task may wait for a worker (None: no limit).
        queue_without_workers: accept tasks for a capability no live worker offers yet (they wait);
            otherwise they are refused with NoWorkerError.
    """

    def __init__(
        self,
        crew: Crew,
        directory: WorkerDirectory,
        home: TaskHome,
        index: TaskIndex,
        *,
        queue_timeout_seconds: float | None,
        queue_without_workers: bool = False,
        retention: Retention | None = None,
    ) -> None:
        self.crew = crew
        self.retention = retention or Retention()
        self.directory = directory
        self.home = home
        self.index = index
        self._queue_timeout = queue_timeout_seconds
        self._queue_without_workers = queue_without_workers
        # Called with each task's handle once it is accepted (or resumed from the store): the seam for
        # observers that follow every task, such as the dashboard's live feed. Each must return at once.
        self.on_accepted: list[Callable[[AsyncTaskHandle], None]] = []
        directory.on_left.append(self._worker_left)

    async def start(self) -> None:
        """Start taking the tasks the home holds for this engine (unfinished ones it kept first)."""
        use_retention = getattr(self.home, "use_retention", None)
        if use_retention is not None:  # (a home whose store expires what ended by itself: NATS)
            use_retention(self.retention)
        await self.home.start(self)
        if self.retention.active:
            sweeping = asyncio.get_running_loop().create_task(
                expiry.sweep(self.retention, self.expire_now), name="retention"
            )
            self.crew.background.add(sweeping)
            sweeping.add_done_callback(self.crew.background.discard)

    async def expire_now(self) -> list[str]:
        """One retention sweep, now: the ids of the finished tasks dropped (see `core.retention`)."""
        return await expiry.expire_now(self.index, self.home, self.retention, self.crew.metrics)

    # ---- accepting -------------------------------------------------------------------------------------------

    async def submit(
        self,
        capability: str,
        params: Mapping[str, Any] | None,
        options: TaskOptions,
        trace_context: TraceContext = NO_TRACE,
    ) -> AsyncTaskHandle:
        """Accept a task: it runs on a capable worker with a free slot, or waits in the queue for one.

        Returns once it is stored, whatever the workers are doing: the handle is PENDING while it waits.

        Raises:
            InvalidParametersError: the arguments break the capability's declared parameters (all listed).
            NoWorkerError: no live worker offers the capability, or none meets the task's requirements.
            QueueFullError: the queue is at its bound.
            TaskExistsError: a task with this id was submitted before.
        """
        return (await self.submit_spec(self.spec(capability, params, options, trace_context))).handle

    async def submit_spec(self, spec: TaskSpec) -> Acceptance:
        """`accept`, awaited: the acceptance once the task is stored (see `submit` for what it raises)."""
        acceptance: asyncio.Future[Acceptance] = asyncio.get_running_loop().create_future()

        def then(accepted: Acceptance | None, error: BaseException | None) -> None:
            if acceptance.done():
                return
            if accepted is not None:
                acceptance.set_result(accepted)
            else:
                acceptance.set_exception(error or RuntimeError("acceptance ended without an answer"))

        self.accept(spec, then)
        return await acceptance

    def accept(self, spec: TaskSpec, then: Accepted) -> None:
        """The one way in: admit a task (a spec without an id or a creation time gets them), and hand it to
        its home, which stores it (its id and key claimed) and then tells `then(acceptance, None)`, or
        `then(None, error)` (the errors of `submit`). A known idempotency key is not a new task: `then` hears
        the earlier one's handle, as a duplicate (admission is for new tasks only).

        Raises:
            InvalidParametersError: a bad capability name (nothing is stored, and `then` is not called).
        """
        check_capability(spec.capability)
        self.home.accept(identified(spec), lambda accepted, error: self._accepted(accepted, error, then), self._admit)

    def flush(self) -> None:
        """Store now the acceptances made so far rather than on the loop's next turn (after a batch of them,
        so that their `then` are called sooner)."""
        self.home.flush()

    def spec(
        self,
        capability: str,
        params: Mapping[str, Any] | None,
        options: TaskOptions,
        trace_context: TraceContext = NO_TRACE,
    ) -> TaskSpec:
        """The task as the engine carries it: its own id unless one was given, its arguments encoded once.

        Raises:
            InvalidParametersError: a bad capability name, or arguments that cannot be sent.
        """
        check_capability(capability)
        if params is not None and not isinstance(params, Mapping):
            raise InvalidParametersError([f"params must be a mapping of names to values, got {short(params)}"])
        params = dict(params or {})
        return TaskSpec(
            task_id=options.task_id or new_task_id(),
            capability=capability,
            params=params,
            encoded_params=encode_params(params),
            options=options,
            created_at_ns=time.time_ns(),
            trace_context=trace_context,
        )

    # ---- what the home hands over (`core.home.Runs`) --------------------------------------------------------

    def run(self, hold: Hold) -> AsyncTaskHandle:
        """Run a task the home holds for this engine: from its start, or from where `hold.resume` says."""
        spec = hold.spec
        run: TaskRun | WorkflowRun
        if spec.capability == WORKFLOW_CAPABILITY:
            run = WorkflowRun(hold, self, self.index, self.crew.background, self.crew.metrics, self.crew.clock)
        else:
            queue_timeout = spec.options.queue_timeout_seconds
            run = TaskRun(
                hold, self.crew, queue_timeout_seconds=self._queue_timeout if queue_timeout is None else queue_timeout
            )
        self.index.add(run)
        if hold.sink is not None:
            run.handle.subscribe(hold.sink)
        if hold.may_be_lost:
            hold.when_lost(lambda reason: self._handed_over(run, reason))
        if hold.resume is None:
            run.start()
        else:
            run.resume(hold.resume)
        logger.debug("task %s taken", spec.task_id, extra={"task_id": spec.task_id})
        return run.handle

    def announce(self, handle: AsyncTaskHandle) -> None:
        """Tell the observers of `on_accepted` of a task (one resumed from the store, say)."""
        for observer in list(self.on_accepted):
            try:
                observer(handle)
            except Exception:  # an observer's bug must not fail a task that was accepted
                logger.exception("task observer %r failed", observer)

    def handle(self, task_id: str) -> AsyncTaskHandle | None:
        """The handle of a task running or recently finished here."""
        run = self.index.get(task_id)
        return run.handle if run is not None else None

    def capabilities(self) -> set[str]:
        return {offered.name for worker in self.directory.workers.values() for offered in worker.capabilities}

    def waiting_for(self, capability: str) -> int:
        return self.crew.scheduler.waiting_for(capability)

    def on_capabilities(self, listener: Callable[[], None]) -> None:
        self.directory.on_change.append(listener)

    # ---- reading and cancelling ------------------------------------------------------------------------------

    async def watch(self, task_id: str) -> AsyncTaskHandle:
        """A handle on any task this engine or its home knows (finished ones replay their end).

        Raises:
            TaskNotFoundError: the task is unknown (or forgotten).
        """
        handle = self.handle(task_id)
        if handle is None:
            handle = await self.home.follow(task_id)
        if handle is None:
            raise self._unknown(task_id)
        return handle

    async def task(self, task_id: str) -> TaskRecord:
        run = self.index.get(task_id)
        record = run.record() if run is not None else await self.home.record(task_id)
        if record is None:
            raise self._unknown(task_id)
        published = getattr(self.home, "updates", None)
        if run is None and not record.status.is_terminal and published is not None:
            record = asking.with_exchanges(record, await published(task_id))  # (another engine runs it)
        return self._expiring(record)

    def _expiring(self, record: TaskRecord) -> TaskRecord:
        return expiry.expiring(record, self.retention)

    def _unknown(self, task_id: str) -> TaskNotFoundError:
        return expiry.unknown(task_id, self.retention)

    async def submission(self, task_id: str) -> TaskSpec | None:
        """A task as it was submitted (options included), running or finished; None: not known."""
        run = self.index.get(task_id)
        return run.spec if run is not None else await self.home.submission(task_id)

    async def task_page(self, query: TaskQuery) -> tuple[list[TaskRecord], bool]:
        """Records matching `query`, most recently submitted first; True when more follow this page.

        The runs here are read first; the rest from the home, which holds every task (its filters reach the
        store, so a page is found among all of them).
        """
        limit, offset = query.limit, query.offset
        found = self.index.matching(query)
        # The first offset + limit + 1 of the home's matches hold this page's, whatever memory holds.
        for record in await self.home.page(query, limit=offset + limit + 1):
            found.setdefault(record.task_id, record)
        ordered = sorted(found.values(), key=newest_first)
        page = ordered[offset : offset + limit]
        if self.retention.active:
            page = [self._expiring(record) for record in page]
        return page, len(ordered) > offset + limit

    async def cancel(self, task_id: str, reason: str) -> bool:
        reason = reason or "canceled by the caller"
        run = self.index.live.get(task_id)
        if run is not None:
            return await run.cancel(reason)
        if self.index.get(task_id) is not None:
            return False  # it finished here
        asked = await self.home.cancel(task_id, reason)
        if asked is None:
            raise TaskNotFoundError(task_id, "the orchestrator")
        return asked

    # ---- dead letters ----------------------------------------------------------------------------------------

    async def dead_letters(self) -> list[DeadLetter]:
        return await self.home.dead_letters()

    async def requeue_dead_letter(self, task_id: str) -> AsyncTaskHandle:
        """Submit a dead letter again, as a new task (taken from the home: of two engines, one gets it).

        Raises:
            TaskNotFoundError: no dead letter has this id.
        """
        letter = await self.home.take_dead_letter(task_id)
        if letter is None:
            raise TaskNotFoundError(task_id, "the dead-letter queue")
        try:
            spec = self.spec(letter.capability, letter.params, letter.options)
            return (await self.submit_spec(dataclasses.replace(spec, owner=letter.owner))).handle
        except BaseException:
            self.home.put_dead_letter(letter)  # not resubmitted: it stays a dead letter
            raise

    async def purge_dead_letters(self, task_ids: Iterable[str] | None) -> int:
        return await self.home.purge_dead_letters(task_ids)

    # ---- the workers -----------------------------------------------------------------------------------------

    def queue_depths(self) -> dict[str, dict[int, int]]:
        return self.crew.scheduler.depths()

    def worker_health(self, workers: Iterable[WorkerInfo]) -> list[WorkerHealth]:
        crew = self.crew
        found = []
        for worker in workers:
            state, reason = crew.standing.state(worker)
            found.append(
                WorkerHealth(
                    worker=worker,
                    state=state,
                    state_reason=reason,
                    circuit=crew.standing.breakers.state(worker.worker_id).value,
                    in_flight=crew.scheduler.in_flight(worker.worker_id),
                )
            )
        return found

    async def aclose(self) -> None:
        """Stop what the runs have in flight, then the home (what it holds goes back at once)."""
        background = list(self.crew.background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self.home.aclose()

    # ---- inside ----------------------------------------------------------------------------------------------

    def _admit(self, spec: TaskSpec) -> None:
        """Raise unless the task passes admission (size, capability, requirements, room in the queue)."""
        problem = limits.too_large("the task's arguments", payload_bytes(spec.encoded_params))
        if problem is not None:
            raise InvalidParametersError([problem])
        if spec.capability == WORKFLOW_CAPABILITY:
            self._admit_workflow(spec)
            return
        scheduler = self.crew.scheduler
        admit(spec, Wanted.of(spec), self.directory, scheduler, wait_for_workers=self._queue_without_workers)
        scheduler.check_room(spec.capability)

    def _admit_workflow(self, spec: TaskSpec) -> None:
        """A workflow is admitted whole: every problem with it, its steps' capabilities and their literal
        parameters included, is listed at once (InvalidParametersError), before any step runs."""
        unknown = sorted(set(spec.params) - {"workflow", "kept", "rerun_of"})
        problems = [f"a workflow's arguments are workflow, kept and rerun_of, not {short(unknown)}"] if unknown else []
        if not isinstance(spec.params.get("kept", {}), Mapping):
            problems.append("kept (the outputs a rerun keeps) must map step names to outputs")
        if not isinstance(spec.params.get("rerun_of", ""), str):
            problems.append("rerun_of must be a workflow id")
        try:
            workflow = Workflow.from_dict(spec.params.get("workflow"))
        except InvalidWorkflowError as invalid:
            raise InvalidParametersError(problems + invalid.problems) from None
        capabilities: dict[str, CapabilitySpec | None] | None = None
        if not self._queue_without_workers:
            capabilities = {}
            for worker in self.directory.workers.values():
                for capability in worker.capabilities:
                    capabilities.setdefault(capability.name, capability)
        problems += workflow.problems(capabilities)
        steps = [*workflow.steps, *([workflow.failure_step] if workflow.failure_step is not None else [])]
        # Its steps' tasks are `<id>.<step>` (`.<i>` for a map's elements): each must be an id too.
        longest = max((len(s.name) + (8 if s.map is not None else 0) for s in steps), default=0)
        if len(spec.task_id) + 1 + longest > MAX_ID_LENGTH:
            problems.append(
                f"the workflow id ({len(spec.task_id)} characters) is too long for its steps' task ids "
                f"(<id>.<step>, at most {MAX_ID_LENGTH} characters): shorten the id or the step names"
            )
        if problems:
            raise InvalidParametersError(problems)

    def _accepted(self, accepted: Acceptance | None, error: BaseException | None, then: Accepted) -> None:
        if accepted is not None and not accepted.duplicate:
            logger.debug("task %s accepted", accepted.handle.task_id, extra={"task_id": accepted.handle.task_id})
            self.announce(accepted.handle)
        then(accepted, error)

    def _handed_over(self, run: Run, reason: str) -> None:
        """The run's hold was lost: it stops here (another engine carries the task on)."""
        run.hand_over(reason)
        self.index.remove(run)

    def _worker_left(self, worker: WorkerInfo, reason: str) -> None:
        # Attempts still running there will not report back: each fails (and is retried if allowed).
        for run in list(self.index.live.values()):
            run.worker_left(worker.worker_id, reason)
        self.crew.standing.left(worker.worker_id)
