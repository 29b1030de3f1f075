"""Placement and capacity: which waiting task goes to which worker, and when.

Tasks wait in `TaskQueue`s, one per (capability, required tags, pinned worker), so tasks in one queue
can all use the same workers and the head of a queue never blocks a task that could run elsewhere.
A worker gets a task only while it has a free slot by the orchestrator's own count of tasks in flight
(its `max_concurrent_tasks`, and the capability's); a worker that still refuses for capacity (another
orchestrator filled it) is skipped until one of our tasks on it ends or a short back-off passes.
Among the workers that fit, the one carrying more preferred tags wins, then the one with the lowest share
of its slots in use; remaining ties rotate, so equal workers take turns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import grpc
from grpc import aio

from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.errors import QueueFullError
from worker_abstraction.orchestrator.breaker import BreakerState, CircuitBreakers
from worker_abstraction.orchestrator.discovery import WorkerDirectory
from worker_abstraction.orchestrator.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.health import HealthWatch
from worker_abstraction.orchestrator.link import WorkerLink, WorkerUnreachableError
from worker_abstraction.orchestrator.queue import QueuedTask, TaskQueue
from worker_abstraction.orchestrator.retry import RetryPolicy
from worker_abstraction.types import WorkerInfo

logger = logging.getLogger(__name__)

QueueKey = tuple[str, frozenset[str], str]  # capability, required tags, pinned worker id

_UNLIMITED_SLOTS = 1024  # how an unlimited worker counts when comparing how busy workers are
_RETRY_FULL_SECONDS = 0.25  # back-off for a worker that refused a task for capacity
_RETRY_UNREACHABLE_SECONDS = 1.0
_CANCEL_RETRY_SECONDS = 1.0
_CANCEL_TIMEOUT_SECONDS = 2.0


@dataclass(slots=True)
class Job:
    """One task on its way to a worker."""

    task: pb.Task
    handle: AsyncTaskHandle
    capability: str
    required_tags: frozenset[str]
    preferred_tags: frozenset[str]
    pinned: str
    retry: RetryPolicy
    first_attempt: asyncio.Future[None]  # resolved once a worker has answered (accepted or refused)
    reserved_on: str = ""  # the worker whose slot this job holds right now
    waiting: QueuedTask | None = None  # its queue entry while it waits
    entry: QueuedTask | None = None  # its queue entry, kept so a retry goes back in its old place
    cancel_reason: str = ""  # set when canceled while its first dispatch was on the way
    avoid: frozenset[str] = frozenset()  # workers that failed it: a retry prefers others (shared empty set)
    idempotency_key: str = ""
    dead_lettered: bool = False

    def settle_first_attempt(self) -> None:
        """A worker has answered (or none will be asked): release whoever awaits the first dispatch."""
        if not self.first_attempt.done():
            self.first_attempt.set_result(None)


class Scheduler:
    """Queues tasks and hands them to workers as slots free up."""

    def __init__(
        self,
        directory: WorkerDirectory,
        link: Callable[[str], WorkerLink],
        *,
        max_queued: int,
        max_queued_per_capability: Mapping[str, int] | None,
        aging_seconds: float,
        fairness_weights: Mapping[str, int] | None,
        breakers: CircuitBreakers | None = None,
        health: HealthWatch | None = None,
    ) -> None:
        self.breakers = breakers or CircuitBreakers()
        self.health = health
        # Told when a job is handed to a worker / taken back (the orchestrator persists both).
        self.on_dispatch: Callable[[Job], None] | None = None
        self.on_requeue: Callable[[Job], None] | None = None
        self._directory = directory
        self._link = link
        self._max_queued = max_queued
        self._max_per_capability = dict(max_queued_per_capability or {})
        self._aging = aging_seconds
        self._weights = dict(fairness_weights or {})
        self._queues: dict[QueueKey, TaskQueue] = {}
        self._waiting: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self._in_flight_capability: Counter[tuple[str, str]] = Counter()
        self._held_back: dict[str, float] = {}  # worker id -> monotonic time it may get tasks again
        self._turn = 0
        self._dispatching: set[asyncio.Task[None]] = set()
        self._cancels: set[asyncio.Task[bool]] = set()
        directory.on_change.append(self.pump)

    @property
    def waiting(self) -> int:
        return sum(self._waiting.values())

    def depths(self) -> dict[str, dict[int, int]]:
        """Waiting tasks per capability and priority."""
        depths: dict[str, Counter[int]] = {}
        for (capability, _, _), queue in self._queues.items():
            depths.setdefault(capability, Counter()).update(queue.depth_by_priority())
        return {capability: dict(sorted(c.items(), reverse=True)) for capability, c in sorted(depths.items())}

    def submit(self, job: Job, *, priority: int, fairness_key: str) -> None:
        """Queue a job and dispatch whatever can run now.

        Raises:
            QueueFullError: the queue (overall or for this capability) is at its bound.
        """
        limit = self._max_per_capability.get(job.capability)
        if limit is not None and self._waiting[job.capability] >= limit:
            raise QueueFullError(job.capability, limit, f"limit for capability {job.capability!r}")
        if self.waiting >= self._max_queued:
            raise QueueFullError(job.capability, self._max_queued, "orchestrator limit")
        key = (job.capability, job.required_tags, job.pinned)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = TaskQueue(aging_seconds=self._aging, weights=self._weights)
        job.waiting = job.entry = queue.push(job, priority=priority, fairness_key=fairness_key, now=time.monotonic())
        self._waiting[job.capability] += 1
        self.pump()

    def withdraw(self, job: Job) -> bool:
        """Take a job out of the queue before it is dispatched; False if it is not waiting."""
        key = (job.capability, job.required_tags, job.pinned)
        queue = self._queues.get(key)
        if job.waiting is None or queue is None or not queue.remove(job.waiting):
            return False
        if not len(queue):
            del self._queues[key]
        job.waiting = None
        self._waiting[job.capability] -= 1
        return True

    def pump(self) -> None:
        """Hand queued jobs to workers with free slots, best effective priority first."""
        now = time.monotonic()
        for key, queue in sorted(self._queues.items(), key=lambda kv: -kv[1].head_level(now)):
            while len(queue):
                head = queue.peek(now)
                assert head is not None
                worker = self._pick(head.payload, now)
                if worker is None:
                    break
                self._start(queue.pop(now), worker)
            if not len(queue):
                del self._queues[key]

    def fits(self, job: Job, worker: WorkerInfo) -> bool:
        """Whether the worker may ever run the job (capability, tags, pin), ignoring its load."""
        spec = worker.capability(job.capability)
        if spec is None or (job.pinned and worker.worker_id != job.pinned):
            return False
        if spec.required_tags and not {t.lower() for t in spec.required_tags} <= worker.tag_set:
            return False
        return job.required_tags <= worker.tag_set

    def _has_room(self, job: Job, worker: WorkerInfo, now: float) -> bool:
        if self._held_back.get(worker.worker_id, 0.0) > now or not self.breakers.allows(worker.worker_id, now):
            return False
        if self.health is not None and not self.health.allows(worker):
            return False
        if worker.max_concurrent_tasks and self.in_flight[worker.worker_id] >= worker.max_concurrent_tasks:
            return False
        spec = worker.capability(job.capability)
        limit = spec.max_concurrent_tasks if spec is not None else 0
        return not limit or self._in_flight_capability[(worker.worker_id, job.capability)] < limit

    def _pick(self, job: Job, now: float) -> WorkerInfo | None:
        candidates = [
            w for w in self._directory.capable(job.capability) if self.fits(job, w) and self._has_room(job, w, now)
        ]
        if not candidates:
            return None
        self._turn += 1
        count = len(candidates)

        def preference(index: int) -> tuple[bool, int, float, int]:
            worker = candidates[index]
            preferred = len(job.preferred_tags & worker.tag_set)
            share = self.in_flight[worker.worker_id] / (worker.max_concurrent_tasks or _UNLIMITED_SLOTS)
            return (worker.worker_id in job.avoid, -preferred, share, (index - self._turn) % count)

        return candidates[min(range(count), key=preference)]

    def _start(self, item: QueuedTask, worker: WorkerInfo) -> None:
        job: Job = item.payload
        job.waiting = None
        self._waiting[job.capability] -= 1
        self._reserve(job, worker.worker_id)
        self.breakers.dispatched(worker.worker_id)
        job.handle.assign(worker.worker_id, worker.address, job.task.attempt)
        job.task.worker_id = worker.worker_id
        if self.on_dispatch is not None:
            self.on_dispatch(job)
        dispatch = asyncio.create_task(self._dispatch(item, worker), name=f"dispatch-{job.task.task_id}")
        self._dispatching.add(dispatch)
        dispatch.add_done_callback(self._dispatching.discard)

    async def _dispatch(self, item: QueuedTask, worker: WorkerInfo) -> None:
        job: Job = item.payload
        try:
            response = await self._link(worker.address).dispatch(job.task, job.handle)
        except WorkerUnreachableError as error:
            logger.info(
                "worker %s unreachable (%s); task %s waits for another", worker.worker_id, error, job.task.task_id
            )
            self.worker_failed(worker.worker_id)
            if self.health is not None:
                self.health.suspect(worker.worker_id, f"task dispatch failed: {error}")
            self._requeue(item, worker, _RETRY_UNREACHABLE_SECONDS)
            return
        except Exception as error:  # a bug or an unexpected status: fail the task, never lose it silently
            logger.exception("dispatching task %s failed", job.task.task_id)
            job.handle.reject(f"dispatch to worker {worker.worker_id} failed: {error}")
            job.settle_first_attempt()
            return
        if response.accepted:
            job.settle_first_attempt()
            if job.cancel_reason:  # canceled while this dispatch was on its way
                await self.cancel_on_worker(job, job.cancel_reason)
        elif response.reject_reason in (pb.REJECT_REASON_RESOURCE_EXHAUSTED, pb.REJECT_REASON_SHUTTING_DOWN):
            self._requeue(item, worker, _RETRY_FULL_SECONDS)
        else:
            job.handle.reject(response.message or "no reason given")
            job.settle_first_attempt()

    def _requeue(self, item: QueuedTask, worker: WorkerInfo, hold_seconds: float) -> None:
        job: Job = item.payload
        self.release(job)
        job.handle.assign("", "")
        if self.on_requeue is not None:
            self.on_requeue(job)
        self._held_back[worker.worker_id] = time.monotonic() + hold_seconds
        asyncio.get_running_loop().call_later(hold_seconds, self.pump)
        key = (job.capability, job.required_tags, job.pinned)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = TaskQueue(aging_seconds=self._aging, weights=self._weights)
        queue.push_front(item)
        job.waiting = item
        self._waiting[job.capability] += 1
        self.pump()

    def worker_failed(self, worker_id: str) -> None:
        """Count an infrastructure failure against the worker's breaker; pump again when it may probe."""
        self.breakers.failed(worker_id)
        if self.breakers.state(worker_id) is BreakerState.OPEN:
            logger.warning("circuit open for worker %s: no tasks for %gs", worker_id, self.breakers.cooldown_seconds)
            asyncio.get_running_loop().call_later(self.breakers.cooldown_seconds, self.pump)

    def retry(self, job: Job, delay_seconds: float) -> None:
        """Queue a job again, as its next attempt, after a back-off; a different worker is preferred."""
        job.avoid = job.avoid | {job.handle.worker_id}
        follower = job.handle.follower
        if follower is not None and follower is not asyncio.current_task():
            follower.cancel()
        job.handle.follower = None
        self.release(job)
        job.handle.assign("", "")
        job.task.attempt += 1
        # From now on only the next attempt may speak: a late word from the one given up on (a zombie
        # back from a pause) is fenced off even during the back-off.
        job.handle.attempt = job.task.attempt
        if self.on_requeue is not None:
            self.on_requeue(job)
        asyncio.get_running_loop().call_later(delay_seconds, self._requeue_retry, job)

    def _requeue_retry(self, job: Job) -> None:
        if job.handle.done() or job.entry is None:  # canceled during the back-off
            return
        key = (job.capability, job.required_tags, job.pinned)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = TaskQueue(aging_seconds=self._aging, weights=self._weights)
        queue.push_front(job.entry)
        job.waiting = job.entry
        self._waiting[job.capability] += 1
        self.pump()

    async def cancel_on_worker(self, job: Job, reason: str) -> bool:
        """Ask the worker running the job to cancel it; its CANCELED update then arrives as usual."""
        link = self._link(job.handle.worker_address)
        try:
            response = await link.stub.CancelTask(
                pb.CancelTaskRequest(task_id=job.task.task_id, reason=reason), timeout=_CANCEL_TIMEOUT_SECONDS
            )
        except aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                job.cancel_reason = reason  # not arrived yet: canceled once the worker acknowledges it
                return True
            # Unreachable for now: keep asking until the task ends one way or another (a lost worker's
            # attempt fails and, being canceled, is not retried).
            job.cancel_reason = reason
            logger.info("cancel of task %s not delivered (%s); retrying", job.task.task_id, error.code().name)
            asyncio.get_running_loop().call_later(_CANCEL_RETRY_SECONDS, self._retry_cancel, job)
            return True
        return bool(response.canceled)

    def retry_cancel_soon(self, job: Job) -> None:
        """Send the job's pending cancel to its worker shortly (e.g. one stored before a restart)."""
        asyncio.get_running_loop().call_soon(self._retry_cancel, job)

    def _retry_cancel(self, job: Job) -> None:
        if job.handle.done() or not job.handle.worker_id:
            return
        resend = asyncio.create_task(self.cancel_on_worker(job, job.cancel_reason), name="resend-cancel")
        self._cancels.add(resend)
        resend.add_done_callback(self._cancels.discard)

    def adopt(self, job: Job, worker_id: str) -> None:
        """Count a job already running on a worker (resumed after a restart) against that worker's slots."""
        self._reserve(job, worker_id)

    def _reserve(self, job: Job, worker_id: str) -> None:
        job.reserved_on = worker_id
        self.in_flight[worker_id] += 1
        self._in_flight_capability[(worker_id, job.capability)] += 1

    def release(self, job: Job) -> None:
        """Give back the slot a job holds (when its task ends, or before it is queued again)."""
        worker_id, job.reserved_on = job.reserved_on, ""
        if not worker_id:
            return
        self.in_flight[worker_id] -= 1
        self._in_flight_capability[(worker_id, job.capability)] -= 1
        self._held_back.pop(worker_id, None)  # it just finished one of ours: it has room again
        self.pump()
