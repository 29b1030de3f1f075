"""AsyncOrchestrator: find a capable worker, hand it the task, follow the task to its end."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any

from google.protobuf import empty_pb2
from grpc import aio

from worker_abstraction import _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.codec import encode_params
from worker_abstraction.errors import (
    InvalidParametersError,
    NoWorkerError,
    TaskExistsError,
    TaskNotFoundError,
    TaskRejectedError,
)
from worker_abstraction.orchestrator import batch
from worker_abstraction.orchestrator import retry as retries
from worker_abstraction.orchestrator.breaker import BreakerState, CircuitBreakers
from worker_abstraction.orchestrator.deadletters import DeadLetterQueue
from worker_abstraction.orchestrator.discovery import WorkerDirectory
from worker_abstraction.orchestrator.follow import follow
from worker_abstraction.orchestrator.handle import LOST, AsyncTaskHandle
from worker_abstraction.orchestrator.health import HealthWatch
from worker_abstraction.orchestrator.journal import TaskJournal
from worker_abstraction.orchestrator.link import WorkerLink
from worker_abstraction.orchestrator.records import TaskRecords, finished_handle, record_of, statuses_of
from worker_abstraction.orchestrator.retry import RetryPolicy
from worker_abstraction.orchestrator.scheduler import Job, Scheduler
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.stores.tasks import TaskStore
from worker_abstraction.types import DeadLetter, TaskRecord, TaskStatus, TaskUpdate, WorkerHealth, WorkerInfo
from worker_abstraction.validation import parameter_problems

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_SECONDS = 1.0


class AsyncOrchestrator:
    """Queues tasks, hands them to capable workers with free slots, and follows them.

    Args:
        registry: host:port of the registry.
        discovery_timeout_seconds: how long `start()` waits for the first view of the workers.
        poll_interval_seconds: polling period when the registry lacks WatchWorkers (a seed registry).
        fast_path: use a worker's task channel when it offers one (False: always the seed's RPCs).
        max_queued: tasks that may wait for a free worker at once; past it submissions raise QueueFullError.
        max_queued_per_capability: tighter bounds for single capabilities.
        aging_seconds: a waiting task gains one priority level per this many seconds, so none starves.
        fairness_weights: turns per round for fairness keys (default 1 each).
        retry_policy: the default RetryPolicy (a task may bring its own).
        queue_timeout_seconds: default limit on how long a task may wait for a worker (None: no limit).
        breaker_failure_threshold: consecutive infrastructure failures that open a worker's circuit.
        breaker_cooldown_seconds: how long an open circuit keeps tasks away before one probe may go.
        task_store: where accepted tasks are kept (e.g. SqliteTaskStore); unfinished ones are resumed by
            `start()`, finished ones and dead letters stay readable. Default: memory only.
        keep_finished: finished tasks whose records are kept in memory for `task()` / `tasks()`.
    """

    def __init__(
        self,
        registry: str,
        *,
        discovery_timeout_seconds: float = 5.0,
        poll_interval_seconds: float = 2.0,
        fast_path: bool = True,
        max_queued: int = 100_000,
        max_queued_per_capability: Mapping[str, int] | None = None,
        aging_seconds: float = 10.0,
        fairness_weights: Mapping[str, int] | None = None,
        retry_policy: RetryPolicy | None = None,
        queue_timeout_seconds: float | None = None,
        breaker_failure_threshold: int = 5,
        breaker_cooldown_seconds: float = 10.0,
        task_store: TaskStore | None = None,
        keep_finished: int = 10_000,
    ) -> None:
        self.registry = registry
        self._discovery_timeout = discovery_timeout_seconds
        self._registry_client = RegistryClient(registry)
        self._directory = WorkerDirectory(self._registry_client, poll_interval_seconds=poll_interval_seconds)
        self._fast_path = fast_path
        self._links: dict[str, WorkerLink] = {}
        self._handles: dict[str, AsyncTaskHandle] = {}
        self._jobs: dict[str, Job] = {}
        self._health = HealthWatch(self._probe, lambda worker_id: self._directory.workers.get(worker_id))
        self._scheduler = Scheduler(
            self._directory,
            self._link,
            max_queued=max_queued,
            max_queued_per_capability=max_queued_per_capability,
            aging_seconds=aging_seconds,
            fairness_weights=fairness_weights,
            breakers=CircuitBreakers(
                failure_threshold=breaker_failure_threshold, cooldown_seconds=breaker_cooldown_seconds
            ),
            health=self._health,
        )
        self._health.on_recovered.append(self._scheduler.pump)
        self._retry_policy = retry_policy or RetryPolicy()
        self._queue_timeout = queue_timeout_seconds
        self._dead_letters = DeadLetterQueue()
        # idempotency key -> handle, finished ones included, so a resubmission gets the same task back.
        self._by_key: OrderedDict[str, AsyncTaskHandle] = OrderedDict()
        self._keep_keys = 100_000
        self._directory.on_left.append(self._worker_left)
        self._journal = TaskJournal(task_store)
        self._records = TaskRecords(self._journal, keep_finished=keep_finished)
        if self._journal.durable:
            self._scheduler.on_dispatch = self._journal.dispatched
            self._scheduler.on_requeue = self._journal.requeued
        self._started = False

    @classmethod
    async def create(cls, registry: str, **options: Any) -> AsyncOrchestrator:
        """Construct and start an orchestrator."""
        orchestrator = cls(registry, **options)
        await orchestrator.start()
        return orchestrator

    async def start(self) -> None:
        """Start watching the registry and wait (briefly) for the first view of the workers."""
        if self._started:
            return
        self._started = True
        self._directory.start()
        try:
            async with asyncio.timeout(self._discovery_timeout):
                await self._directory.synced.wait()
        except TimeoutError:
            logger.warning("no answer from registry %s yet; continuing without workers", self.registry)
        if self._journal.durable:
            await self._recover()

    async def aclose(self) -> None:
        """Stop following tasks and close every connection."""
        await self._directory.aclose()
        await self._health.aclose()
        await self._journal.drain()
        followers = [h.follower for h in self._handles.values() if h.follower is not None]
        for follower in followers:
            follower.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        for link in self._links.values():
            await link.aclose()
        await self._registry_client.aclose()

    async def __aenter__(self) -> AsyncOrchestrator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def workers(self) -> list[WorkerInfo]:
        """The live workers as currently known."""
        return list(self._directory.workers.values())

    async def wait_for_workers(
        self, capability: str | None = None, *, count: int = 1, timeout_seconds: float = 10.0
    ) -> list[WorkerInfo]:
        """Wait until `count` live workers (offering `capability`, if given) are known.

        Raises:
            NoWorkerError: not enough such workers appeared in time.
        """
        try:
            async with asyncio.timeout(timeout_seconds):
                return await self._directory.wait_until(capability, count)
        except TimeoutError:
            raise NoWorkerError(capability or "*", f"fewer than {count} worker(s) after {timeout_seconds:g}s") from None

    def queue_depths(self) -> dict[str, dict[int, int]]:
        """Tasks waiting for a worker, per capability and priority."""
        return self._scheduler.depths()

    async def execute_task(
        self,
        capability: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout_seconds: float = 60,
        priority: int = 0,
        fairness_key: str = "",
        required_tags: Iterable[str] = (),
        preferred_tags: Iterable[str] = (),
        worker_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        task_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        queue_timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncTaskHandle:
        """Submit a task: it runs on a capable worker with a free slot, or waits in the queue for one.

        Args:
            capability: the capability to invoke.
            params: its arguments, checked against the capability's declared parameters before anything
                is sent; each value must be JSON-serializable.
            timeout_seconds: execution deadline once a worker has the task (0 means none).
            priority: higher runs first; waiting tasks age, so low priorities still run.
            fairness_key: e.g. a tenant; keys of equal priority take turns.
            required_tags: run only on workers carrying all these tags.
            preferred_tags: among fitting workers, prefer those carrying these tags.
            worker_id: run only on this worker.
            metadata: free-form string metadata carried with the task.
            task_id: the task's id (default: a new random id).
            retry_policy: overrides the orchestrator's default RetryPolicy for this task.
            queue_timeout_seconds: how long the task may wait for a worker before it fails with
                TaskTimeoutError (in_queue=True); None: the orchestrator's default.
            idempotency_key: submitting again with a key already used returns the first submission's
                handle (running or finished) instead of a new task.

        Returns:
            A handle that streams the task's updates and gives its result; PENDING while it waits.

        Raises:
            InvalidParametersError: the arguments break the capability's declared parameters (all listed).
            NoWorkerError: no live worker offers the capability, or none meets the tags / pin asked for.
            QueueFullError: the queue is at its bound.
            TaskRejectedError: the worker refused the task (its reason is in `reason`).
        """
        if not self._started:
            await self.start()
        if idempotency_key is not None:
            known = await self.find_idempotent(idempotency_key)
            if known is not None:
                return known
        if task_id is not None and task_id in self._jobs:
            raise TaskExistsError(task_id)
        params = dict(params or {})
        task = pb.Task(
            task_id=task_id or uuid.uuid4().hex,
            capability_name=capability,
            parameters=_convert.parameters_to_pb(encode_params(params)),
            # The contract counts whole seconds; round up so a short deadline never becomes "none".
            timeout_seconds=math.ceil(timeout_seconds) if timeout_seconds > 0 else 0,
            created_at=_convert.now_timestamp(),
            metadata=dict(metadata or {}),
            priority=priority,
            fairness_key=fairness_key,
            required_tags=sorted(required_tags),
            preferred_tags=sorted(preferred_tags),
            attempt=1,
        )
        job = self._make_job(task, params, timeout_seconds, worker_id or "", retry_policy or self._retry_policy)
        job.idempotency_key = idempotency_key or ""
        self._check(job, params)
        self._handles[job.task.task_id] = job.handle
        self._jobs[job.task.task_id] = job
        if idempotency_key is not None:  # taken now, so a concurrent resubmission finds this task
            self._remember_key(idempotency_key, job.handle)
        try:
            if self._journal.durable:
                await self._journal.accepted(job, idempotency_key)
            self._scheduler.submit(job, priority=priority, fairness_key=fairness_key)
        except BaseException:
            del self._handles[job.task.task_id], self._jobs[job.task.task_id]
            if idempotency_key is not None:
                self._by_key.pop(idempotency_key, None)
            raise
        wait_limit = queue_timeout_seconds if queue_timeout_seconds is not None else self._queue_timeout
        if wait_limit is not None and not job.handle.worker_id:
            asyncio.get_running_loop().call_later(wait_limit, self._queue_expired, job, wait_limit)
        if job.handle.worker_id:
            # A worker had room at once: wait for its answer, so a refusal surfaces here as it always has.
            await asyncio.shield(job.first_attempt)
            if job.handle.rejection:
                raise TaskRejectedError(job.task.task_id, job.handle.rejection)
        logger.debug("task %s submitted", job.task.task_id, extra={"task_id": job.task.task_id})
        return job.handle

    async def find_idempotent(self, idempotency_key: str) -> AsyncTaskHandle | None:
        """The task submitted with this idempotency key (running or finished), if this orchestrator knows it."""
        handle = self._by_key.get(idempotency_key)
        if handle is None:
            record = await self._records.by_key(idempotency_key)
            handle = self._by_key.get(idempotency_key)  # submitted while the store was asked
            if handle is None and record is not None:
                handle = finished_handle(record)
                self._remember_key(idempotency_key, handle)
        if handle is not None:
            self._by_key.move_to_end(idempotency_key)
        return handle

    def _remember_key(self, idempotency_key: str, handle: AsyncTaskHandle) -> None:
        self._by_key[idempotency_key] = handle
        while len(self._by_key) > self._keep_keys:
            self._by_key.popitem(last=False)

    async def task(self, task_id: str) -> TaskRecord:
        """Where a task stands: status, latest update, every attempt (finished tasks too, see `keep_finished`).

        Raises:
            TaskNotFoundError: the orchestrator does not know (or no longer remembers) the task.
        """
        job = self._jobs.get(task_id)
        record = record_of(job) if job is not None else await self._records.get(task_id)
        if record is None:
            raise TaskNotFoundError(task_id, "the orchestrator")
        return record

    async def tasks(
        self,
        *,
        status: TaskStatus | Iterable[TaskStatus] | None = None,
        capability: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TaskRecord]:
        """Task records, most recently submitted first, optionally of some statuses / one capability."""
        records, _ = await self.task_page(status=status, capability=capability, limit=limit, offset=offset)
        return records

    async def task_page(
        self,
        *,
        status: TaskStatus | Iterable[TaskStatus] | None = None,
        capability: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[TaskRecord], bool]:
        """As `tasks`, and whether more records follow this page."""
        return await self._records.page(
            self._jobs.values(), statuses=statuses_of(status), capability=capability or "", limit=limit, offset=offset
        )

    async def execute_many(
        self,
        capability: str,
        params: Iterable[Mapping[str, Any]],
        *,
        max_pending: int = 1000,
        **options: Any,
    ) -> AsyncIterator[AsyncTaskHandle]:
        """Submit one task per params mapping and yield each handle as its task finishes.

        At most `max_pending` tasks are submitted and unfinished at once, so a million-item input never
        floods the queue. Options are those of `execute_task`; `handle.params` tells the tasks apart.

        Raises:
            InvalidParametersError, NoWorkerError, QueueFullError, TaskRejectedError: as `execute_task`,
                for the first task that hits them; tasks already submitted keep running.
        """
        async for handle in batch.execute_many(
            self.execute_task, capability, params, max_pending=max_pending, **options
        ):
            yield handle

    async def cancel(self, task_id: str, reason: str = "") -> bool:
        """Cancel a task this orchestrator is running or holding; see `AsyncTaskHandle.cancel`.

        Raises:
            TaskNotFoundError: the orchestrator has no unfinished task with this id.
        """
        handle = self._handles.get(task_id)
        if handle is None:
            raise TaskNotFoundError(task_id)
        return await handle.cancel(reason)

    async def _cancel(self, handle: AsyncTaskHandle, reason: str) -> bool:
        job = self._jobs.get(handle.task_id)
        if job is None or handle.done():
            return False
        job.cancel_reason = reason
        if self._journal.durable:
            await self._journal.cancel_requested(job, reason)
            if handle.done():  # it ended while the request was being stored
                return False
        if self._scheduler.withdraw(job) or not handle.worker_id:  # waiting (or between attempts): never runs
            handle.deliver(TaskUpdate(task_id=handle.task_id, status=TaskStatus.CANCELED, error_message=reason))
            return True
        return await self._scheduler.cancel_on_worker(job, reason)

    def _queue_expired(self, job: Job, waited_seconds: float) -> None:
        # Only a task still waiting expires; one that reached a worker runs under its execution deadline.
        if not job.handle.done() and self._scheduler.withdraw(job):
            job.handle.expire_in_queue(waited_seconds)

    def dead_letters(self) -> list[DeadLetter]:
        """Tasks that failed for good after retryable failures, oldest first, with their attempts."""
        return self._dead_letters.list()

    async def requeue_dead_letter(self, task_id: str) -> AsyncTaskHandle:
        """Submit a dead-lettered task again: same capability, parameters and options, a new task id.

        Raises:
            TaskNotFoundError: no dead letter has this id.
        """
        letter = self._dead_letters.take(task_id)
        if letter is None:
            raise TaskNotFoundError(task_id, "the dead-letter queue")
        try:
            o = letter.options
            handle = await self.execute_task(
                letter.capability,
                letter.params,
                timeout_seconds=o.timeout_seconds,
                priority=o.priority,
                fairness_key=o.fairness_key,
                required_tags=o.required_tags,
                preferred_tags=o.preferred_tags,
                worker_id=o.worker_id or None,
                metadata=o.metadata,
                retry_policy=o.retry_policy,
            )
        except BaseException:
            self._dead_letters.restore([letter])  # not resubmitted: it stays a dead letter
            raise
        if self._journal.durable:
            self._journal.dead_letters_removed([task_id])
        return handle

    def purge_dead_letters(self, task_ids: Iterable[str] | None = None) -> int:
        """Drop dead letters (all, or those given); returns how many were dropped."""
        purged = self._dead_letters.purge(task_ids)
        if purged and self._journal.durable:
            self._journal.dead_letters_removed(purged)
        return len(purged)

    def _retry(self, handle: AsyncTaskHandle, update: TaskUpdate) -> bool:
        job = self._jobs.get(handle.task_id)
        if job is None:
            return False
        if job.cancel_reason:  # canceled: a failed attempt is not run again
            return False
        attempt = job.task.attempt
        infrastructure = update.metadata.get(LOST) == "1"
        if infrastructure:
            self._scheduler.worker_failed(handle.worker_id)
            self._health.suspect(handle.worker_id, f"lost task {handle.task_id}: {update.error_message}")
        else:
            self._scheduler.breakers.succeeded(handle.worker_id)  # it answered: the task failed, not the worker
        if not retries.allows(job.retry, attempt, error_message=update.error_message, infrastructure=infrastructure):
            if attempt > 1 or infrastructure:  # it was worth retrying and ran out of attempts
                letter = self._dead_letters.add(job, handle, update)
                job.dead_lettered = True
                if self._journal.durable:
                    self._journal.dead_lettered(letter)
            return False
        delay = job.retry.backoff_seconds(attempt)
        logger.info(
            "task %s attempt %d on worker %s failed (%s); retrying in %.2fs",
            handle.task_id, attempt, handle.worker_id, update.error_message, delay,
            extra={"task_id": handle.task_id},
        )  # fmt: skip
        self._scheduler.retry(job, delay)
        return True

    def _worker_left(self, worker: WorkerInfo, reason: str) -> None:
        # Tasks still running there will not report back: each attempt fails (and is retried if allowed).
        for job in list(self._jobs.values()):
            if job.reserved_on == worker.worker_id and not job.handle.done():
                job.handle.lost(f"worker {worker.worker_id} left the registry: {reason}")
        self._health.forget(worker.worker_id)

    def _make_job(
        self, task: pb.Task, params: dict[str, Any], timeout_seconds: float, pinned: str, retry: RetryPolicy
    ) -> Job:
        job = Job(
            task=task,
            handle=AsyncTaskHandle(
                task_id=task.task_id,
                capability=task.capability_name,
                params=params,
                timeout_seconds=timeout_seconds,
                on_done=self._task_done,
            ),
            capability=task.capability_name,
            required_tags=frozenset(t.lower() for t in task.required_tags),
            preferred_tags=frozenset(t.lower() for t in task.preferred_tags),
            pinned=pinned,
            retry=retry,
            first_attempt=asyncio.get_running_loop().create_future(),
        )
        job.handle.canceller = self._cancel
        job.handle.retrier = self._retry
        job.handle.on_silent_worker = self._silent_worker
        return job

    def _silent_worker(self, worker_id: str) -> None:
        self._health.suspect(worker_id, "let a task pass its deadline without a word")

    async def _probe(self, worker: WorkerInfo) -> bool:
        try:
            await self._link(worker.address).stub.GetWorkerInfo(empty_pb2.Empty(), timeout=_PROBE_TIMEOUT_SECONDS)
        except aio.AioRpcError:
            return False
        return True

    def unfinished(self) -> list[AsyncTaskHandle]:
        """Handles of every task this orchestrator holds that has not finished."""
        return list(self._handles.values())

    def handle(self, task_id: str) -> AsyncTaskHandle | None:
        """The handle of a task this orchestrator holds (also one resumed after a restart) or recently finished."""
        return self._handles.get(task_id) or self._records.recent_handle(task_id)

    async def _recover(self) -> None:
        """Resume the tasks the store holds unfinished: queue the waiting ones, follow the dispatched ones."""
        self._dead_letters.restore(await self._journal.dead_letters())
        found = await self._journal.resumable()
        for item in found:
            task = item.task
            job = self._make_job(task, item.params, item.timeout_seconds, item.pinned, item.retry or self._retry_policy)
            job.idempotency_key = item.idempotency_key
            self._handles[task.task_id] = job.handle
            self._jobs[task.task_id] = job
            if item.idempotency_key:
                self._remember_key(item.idempotency_key, job.handle)
            job.settle_first_attempt()
            stored = item.stored
            if stored.worker_id:
                # It may still be running there: follow it from its first update; a worker that lost it
                # answers NOT_FOUND and the attempt is retried like any lost one.
                task.attempt = stored.attempt
                self._scheduler.adopt(job, stored.worker_id)
                job.handle.assign(stored.worker_id, stored.worker_address, stored.attempt)
                follow(job.handle, self._link(stored.worker_address).stub)
                if stored.cancel_reason:  # asked before the restart: carried out now
                    job.cancel_reason = stored.cancel_reason
                    self._scheduler.retry_cancel_soon(job)
            elif stored.cancel_reason:
                job.cancel_reason = stored.cancel_reason
                job.handle.deliver(
                    TaskUpdate(task_id=task.task_id, status=TaskStatus.CANCELED, error_message=stored.cancel_reason)
                )
            else:
                self._scheduler.submit(job, priority=task.priority, fairness_key=task.fairness_key)
        if found:
            logger.info("resumed %d unfinished task(s) from the task store", len(found))

    def _check(self, job: Job, params: Mapping[str, Any]) -> None:
        capable = self._directory.capable(job.capability)
        if not capable:
            raise NoWorkerError(job.capability, self._why_no_worker())
        fitting = [w for w in capable if self._scheduler.fits(job, w)]
        if not fitting:
            wanted = [f"tags {sorted(job.required_tags)}"] if job.required_tags else []
            wanted += [f"worker {job.pinned!r}"] if job.pinned else []
            offers = "; ".join(f"{w.worker_id} tags {sorted(w.tags)}" for w in capable)
            needs = {t for w in capable for c in w.capabilities if c.name == job.capability for t in c.required_tags}
            if needs:
                wanted.append(f"the capability's own required tags {sorted(needs)}")
            raise NoWorkerError(
                job.capability,
                f"it needs {' and '.join(wanted)}; live workers offering it: {offers}",
                headline=f"no live worker offering {job.capability!r} meets the task's requirements",
            )
        spec = fitting[0].capability(job.capability)
        problems = parameter_problems(spec, params) if spec is not None else []
        if problems:
            raise InvalidParametersError(problems)

    def _why_no_worker(self) -> str:
        if not self._directory.synced.is_set():
            detail = f"registry {self.registry} not reached yet"
            return f"{detail}: {self._directory.last_error}" if self._directory.last_error else detail
        offered = sorted({c.name for w in self._directory.workers.values() for c in w.capabilities})
        return "live workers offer: " + (", ".join(offered) or "nothing, none are live")

    def _link(self, address: str) -> WorkerLink:
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = WorkerLink(address, fast_path=self._fast_path)
        return link

    def breaker_states(self) -> dict[str, BreakerState]:
        """Workers whose circuit is open or half-open (all others are closed)."""
        return self._scheduler.breakers.states()

    def worker_health(self) -> list[WorkerHealth]:
        """Every live worker as this orchestrator sees it: standing, circuit breaker, its tasks there."""
        found = []
        for worker in self._directory.workers.values():
            state, reason = self._health.state(worker)
            found.append(
                WorkerHealth(
                    worker=worker,
                    state=state,
                    state_reason=reason,
                    circuit=self._scheduler.breakers.state(worker.worker_id).value,
                    in_flight=self._scheduler.in_flight[worker.worker_id],
                )
            )
        return found

    def _task_done(self, handle: AsyncTaskHandle) -> None:
        if handle.updates and handle.updates[-1].status in (TaskStatus.COMPLETED, TaskStatus.CANCELED):
            self._scheduler.breakers.succeeded(handle.worker_id)
        self._handles.pop(handle.task_id, None)
        job = self._jobs.pop(handle.task_id, None)
        if job is not None:
            self._records.finished(job)
            self._scheduler.release(job)
