"""The engine: the orchestrator's logic without any gRPC of its own (the registry's `service` layer, here).

It accepts tasks (admission, idempotency, ids never reused), keeps the index of tasks, answers queries,
cancels, manages dead letters and resumes unfinished tasks after a restart. A task's life itself is its
`TaskRun`'s business. `AsyncOrchestrator` wires an engine up in a program; `OrchestratorServicer` serves
one over the wire.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from worker_abstraction import limits
from worker_abstraction.codec import encode_params, payload_bytes, short
from worker_abstraction.errors import InvalidParametersError, TaskExistsError, TaskNotFoundError
from worker_abstraction.observability.tracing import NO_TRACE, TraceContext
from worker_abstraction.options import MAX_ID_LENGTH, TaskOptions
from worker_abstraction.orchestrator.core.admission import admit
from worker_abstraction.orchestrator.core.crew import Crew
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.records import TaskIndex, finished_handle
from worker_abstraction.orchestrator.core.run import TaskRun
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.types import DeadLetter, TaskQuery, TaskRecord, TaskSpec, WorkerHealth, WorkerInfo

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.homes.nats.home import SharedTasks

logger = logging.getLogger(__name__)

# What `Engine.accept_soon` calls once a task is accepted (its handle) or cannot be (the error).
Accepted = Callable[[AsyncTaskHandle | None, BaseException | None], None]


class Engine:
    """Accepts, tracks, cancels and resumes tasks.

    Args:
        crew: the collaborators every run works with.
        directory: the live view of workers.
        index: where tasks are found by id and by idempotency key.
        queue_timeout_seconds: default limit on how long a task may wait for a worker (None: no limit).
        queue_without_workers: accept tasks for a capability no live worker offers yet (they wait);
            otherwise they are refused with NoWorkerError.
        shared: this replica's part in tasks several daemons share (see `orchestrator/homes/nats/home.py`): tasks
            accepted here go to the shared queue and are followed wherever they run; None: tasks run here.
    """

    def __init__(
        self,
        crew: Crew,
        directory: WorkerDirectory,
        index: TaskIndex,
        *,
        queue_timeout_seconds: float | None,
        queue_without_workers: bool = False,
        shared: SharedTasks | None = None,
    ) -> None:
        self.crew = crew
        self.shared = shared
        self.directory = directory
        self.index = index
        self._queue_timeout = queue_timeout_seconds
        self._queue_without_workers = queue_without_workers
        # Called with each task's handle once it is accepted (or resumed from the store): the seam for
        # observers that follow every task, such as the dashboard's live feed. Each must return at once.
        self.on_accepted: list[Callable[[AsyncTaskHandle], None]] = []
        directory.on_left.append(self._worker_left)

    async def submit(
        self,
        capability: str,
        params: Mapping[str, Any] | None,
        options: TaskOptions,
        trace_context: TraceContext = NO_TRACE,
    ) -> AsyncTaskHandle:
        """Accept a task: it runs on a capable worker with a free slot, or waits in the queue for one.

        Returns at once, whatever the workers are doing: the handle is PENDING while the task waits.

        Raises:
            InvalidParametersError: the arguments break the capability's declared parameters (all listed).
            NoWorkerError: no live worker offers the capability, or none meets the task's requirements.
            QueueFullError: the queue is at its bound.
            TaskExistsError: a task with this id was submitted before.
        """
        return await self.submit_spec(self.spec(capability, params, options, trace_context))

    async def submit_spec(self, spec: TaskSpec) -> AsyncTaskHandle:
        """Accept a task already made into a spec (from the wire, say); see `submit`.

        A spec without an id or a creation time gets them here.
        """
        key = spec.options.idempotency_key
        if key:
            known = await self.index.by_key(key)
            if known is not None:
                return known
        _check_capability(spec.capability)
        if spec.options.task_id and await self.index.taken(spec.task_id):  # (a new id of ours is new)
            raise TaskExistsError(spec.task_id)
        return await self.accept(_identified(spec))

    def accept_soon(self, spec: TaskSpec, then: Accepted) -> bool:
        """`submit_spec` without a coroutine of its own, for the daemon's sessions: what can be checked is
        checked now, and `then(handle, None)` is called once the acceptance is stored (`then(None, error)`
        if it cannot be), at once when there is nothing to wait for.

        Returns False (nothing done) when the submission needs the awaited way: an idempotency key or an id
        of the caller's to look up first, or tasks shared with other replicas.

        Raises:
            as `submit`, for what is checked at once.
        """
        if self.shared is not None or spec.options.idempotency_key or spec.options.task_id:
            return False
        _check_capability(spec.capability)
        spec = _identified(spec)
        run = self._admitted(spec)
        self.index.add(run)
        self.crew.journal.accepted_soon(spec, functools.partial(self._stored, run, then))
        return True

    def flush(self) -> None:
        """Store now the acceptances made by `accept_soon` rather than on the loop's next turn (after a batch of
        them, so that their `then` are called sooner)."""
        self.crew.journal.flush()

    async def accept(self, spec: TaskSpec) -> AsyncTaskHandle:
        """Accept a task already made into a spec (see `submit`)."""
        run = self._admitted(spec)
        if self.shared is not None:  # whichever replica takes it runs it; the handle follows it there
            handle = await self.shared.accept(spec)
            self._announce(handle)
            return handle
        self.index.add(run)  # before the store is asked: a concurrent resubmission of the key finds it
        try:
            await self.crew.journal.accepted(spec)  # a crash after this cannot lose the task
        except BaseException:
            self.index.remove(run)
            raise
        return self._started(run)

    def _admitted(self, spec: TaskSpec) -> TaskRun:
        """The run of a task that passes admission (size, capability, requirements, room in the queue)."""
        crew = self.crew
        problem = limits.too_large("the task's arguments", payload_bytes(spec.encoded_params))
        if problem is not None:
            raise InvalidParametersError([problem])
        queue_timeout = spec.options.queue_timeout_seconds
        run = TaskRun(spec, crew, queue_timeout_seconds=self._queue_timeout if queue_timeout is None else queue_timeout)
        admit(spec, run, self.directory, crew.scheduler, wait_for_workers=self._queue_without_workers)
        crew.scheduler.check_room(spec.capability)
        return run

    def _stored(self, run: TaskRun, then: Accepted, problem: BaseException | None) -> None:
        if problem is not None:
            self.index.remove(run)
            then(None, problem)
        else:
            then(self._started(run), None)

    def _started(self, run: TaskRun) -> AsyncTaskHandle:
        """The task is stored (a crash from now on cannot lose it): off it goes."""
        run.start()
        logger.debug("task %s accepted", run.spec.task_id, extra={"task_id": run.spec.task_id})
        self._announce(run.handle)
        return run.handle

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
        _check_capability(capability)
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

    async def find_idempotent(self, key: str) -> AsyncTaskHandle | None:
        return await self.index.by_key(key)

    def handle(self, task_id: str) -> AsyncTaskHandle | None:
        """The handle of a live or recently finished task."""
        run = self.index.get(task_id)
        return run.handle if run is not None else None

    async def watch(self, task_id: str) -> AsyncTaskHandle:
        """A handle on any task this engine knows (finished ones read back from the store replay their end).

        Raises:
            TaskNotFoundError: the task is unknown (or forgotten).
        """
        if self.shared is not None:  # numbered as the update log numbers it, whichever replica runs it
            followed = await self.shared.watch(task_id)
            if followed is None:
                raise TaskNotFoundError(task_id, "the orchestrator")
            return followed
        handle = self.handle(task_id)
        if handle is not None:
            return handle
        return finished_handle(await self.task(task_id))

    async def task(self, task_id: str) -> TaskRecord:
        record = await self.index.record(task_id)
        if record is None and self.shared is not None:
            record = await self.shared.record(task_id)
        if record is None:
            raise TaskNotFoundError(task_id, "the orchestrator")
        return record

    async def task_page(self, query: TaskQuery) -> tuple[list[TaskRecord], bool]:
        return await self.index.page(query)

    async def cancel(self, task_id: str, reason: str) -> bool:
        run = self.index.live.get(task_id)
        if run is None and self.shared is not None:
            return await self.shared.cancel(task_id, reason or "canceled by the caller")
        if run is None:
            if self.index.get(task_id) is not None or await self.index.record(task_id) is not None:
                return False  # it finished
            raise TaskNotFoundError(task_id, "the orchestrator")
        return await run.cancel(reason or "canceled by the caller")

    def dead_letters(self) -> list[DeadLetter]:
        return self.crew.dead_letters.list()

    async def requeue_dead_letter(self, task_id: str) -> AsyncTaskHandle:
        letters, shared = self.crew.dead_letters, self.shared
        # Shared dead letters are taken from the store: of two replicas requeuing one, one gets it.
        letter = await shared.journal.take_dead_letter(task_id) if shared is not None else letters.take(task_id)
        if letter is None:
            raise TaskNotFoundError(task_id, "the dead-letter queue")
        try:
            spec = self.spec(letter.capability, letter.params, letter.options)
            handle = await self.submit_spec(dataclasses.replace(spec, owner=letter.owner))
        except BaseException:
            if shared is not None:
                shared.journal.dead_lettered(letter)  # not resubmitted: it stays a dead letter
            else:
                letters.restore([letter])
            raise
        if shared is None:
            self.crew.journal.dead_letters_removed([task_id])
        else:
            letters.take(task_id)  # (this replica's copy, if it made the letter)
        return handle

    def purge_dead_letters(self, task_ids: Iterable[str] | None) -> int:
        purged = self.crew.dead_letters.purge(task_ids)
        if purged:
            self.crew.journal.dead_letters_removed(purged)
        return len(purged)

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

    async def recover(self) -> None:
        """Resume the tasks the journal holds unfinished, and its dead letters."""
        crew = self.crew
        crew.dead_letters.restore(await crew.journal.dead_letters())
        found = await crew.journal.unfinished()
        for item in found:
            queue_timeout = item.spec.options.queue_timeout_seconds
            run = TaskRun(
                item.spec, crew, queue_timeout_seconds=self._queue_timeout if queue_timeout is None else queue_timeout
            )
            self.index.add(run)
            run.resume(item)
            self._announce(run.handle)
        if found:
            logger.info("resumed %d unfinished task(s) from the task store", len(found))

    async def aclose(self) -> None:
        background = list(self.crew.background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self.crew.journal.drain()

    def _announce(self, handle: AsyncTaskHandle) -> None:
        for observer in list(self.on_accepted):
            try:
                observer(handle)
            except Exception:  # an observer's bug must not fail a task that was accepted
                logger.exception("task observer %r failed", observer)

    def _worker_left(self, worker: WorkerInfo, reason: str) -> None:
        # Attempts still running there will not report back: each fails (and is retried if allowed).
        for run in list(self.index.live.values()):
            run.worker_left(worker.worker_id, reason)
        self.crew.standing.left(worker.worker_id)


def _check_capability(capability: object) -> None:
    if not isinstance(capability, str) or not capability or len(capability) > MAX_ID_LENGTH:
        raise InvalidParametersError(
            [f"capability must be a name of 1..{MAX_ID_LENGTH} characters, got {short(capability)}"]
        )


def new_task_id() -> str:
    """A fresh task id, 32 hex digits: the millisecond it was made (48 bits), then 80 random bits.

    Ids made later sort later (as UUIDv7's and ULID's do), so a store's index on them grows at one end: a
    batch of new tasks touches a page or two of it, not one page per task (measured with the SQLite
    store: a quarter less CPU per task written, and the gap widens as the file grows).
    """
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def _identified(spec: TaskSpec) -> TaskSpec:
    """The spec with an id (a new one of ours unless it has one) and a creation time."""
    if spec.task_id and spec.created_at_ns:
        return spec
    return TaskSpec(
        spec.task_id or new_task_id(),
        spec.capability,
        spec.params,
        spec.encoded_params,
        spec.options,
        time.time_ns(),
        spec.owner,
        spec.trace_context,
    )
