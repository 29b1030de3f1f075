"""RemoteOrchestrator: the same calls as AsyncOrchestrator, served by an orchestrator daemon."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import empty_pb2
from grpc import aio

from worker_abstraction import _convert, _rpc
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.errors import (
    InvalidParametersError,
    NoWorkerError,
    OrchestratorUnavailableError,
    QueueFullError,
    TaskExistsError,
    TaskNotFoundError,
    TaskRejectedError,
    WorkerAbstractionError,
)
from worker_abstraction.orchestrator import batch
from worker_abstraction.orchestrator.follow import RECONNECT_WINDOW_SECONDS
from worker_abstraction.orchestrator.handle import ERROR_KEY, AsyncTaskHandle
from worker_abstraction.orchestrator.records import statuses_of
from worker_abstraction.orchestrator.retry import RetryPolicy
from worker_abstraction.types import DeadLetter, TaskRecord, TaskStatus, WorkerHealth, WorkerInfo

logger = logging.getLogger(__name__)

_WORKER_POLL_SECONDS = 0.1


class RemoteOrchestrator:
    """Submits tasks to an orchestrator daemon (`wa orchestrator`) and follows them.

    Args:
        address: host:port of the daemon's OrchestratorService.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = _rpc.channel(address)
        self._stub = pb_grpc.OrchestratorServiceStub(self._channel)
        self._followers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RemoteOrchestrator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for follower in self._followers:
            follower.cancel()
        await asyncio.gather(*self._followers, return_exceptions=True)
        await self._channel.close(None)

    async def workers(self) -> list[WorkerInfo]:
        """The live workers as the daemon knows them."""
        return [health.worker for health in await self.worker_health()]

    async def wait_for_workers(
        self, capability: str | None = None, *, count: int = 1, timeout_seconds: float = 10.0
    ) -> list[WorkerInfo]:
        """Wait until the daemon knows `count` live workers (offering `capability`, if given).

        Raises:
            NoWorkerError: not enough such workers appeared in time.
            OrchestratorUnavailableError: the daemon could not be reached.
        """
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while True:
            found = [w for w in await self.workers() if capability is None or w.offers(capability)]
            if len(found) >= count:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise NoWorkerError(capability or "*", f"fewer than {count} worker(s) after {timeout_seconds:g}s")
            await asyncio.sleep(_WORKER_POLL_SECONDS)

    async def execute_many(
        self,
        capability: str,
        params: Iterable[Mapping[str, Any]],
        *,
        max_pending: int = 1000,
        **options: Any,
    ) -> AsyncIterator[AsyncTaskHandle]:
        """Submit one task per params mapping through the daemon; see `AsyncOrchestrator.execute_many`."""
        async for handle in batch.execute_many(
            self.execute_task, capability, params, max_pending=max_pending, **options
        ):
            yield handle

    async def queue_depths(self) -> dict[str, dict[int, int]]:
        """Tasks waiting for a worker, per capability and priority."""
        try:
            stats = await self._stub.GetQueueStats(empty_pb2.Empty(), timeout=10)
        except aio.AioRpcError as error:
            raise self._unavailable(error) from error
        depths: dict[str, dict[int, int]] = {}
        for depth in stats.depths:
            depths.setdefault(depth.capability, {})[depth.priority] = depth.waiting
        return depths

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
        """Submit a task through the daemon; behaves as `AsyncOrchestrator.execute_task`.

        Raises (besides those of `AsyncOrchestrator.execute_task`):
            OrchestratorUnavailableError: the daemon could not be reached; whether it accepted the task is
                unknown, so submit again with the same `idempotency_key` to be sure of exactly one task.
        """
        params = dict(params or {})
        try:
            parameters = [pb.TaskParameter(key=k, value_json=json.dumps(v)) for k, v in params.items()]
        except (TypeError, ValueError) as error:
            raise InvalidParametersError([f"parameters are not JSON-serializable: {error}"]) from error
        task = pb.Task(
            task_id=task_id or "",
            worker_id=worker_id or "",
            capability_name=capability,
            parameters=parameters,
            timeout_seconds=math.ceil(timeout_seconds) if timeout_seconds > 0 else 0,
            metadata=dict(metadata or {}),
            priority=priority,
            fairness_key=fairness_key,
            required_tags=list(required_tags),
            preferred_tags=list(preferred_tags),
        )
        request = pb.SubmitTaskRequest(task=task, idempotency_key=idempotency_key or "")
        if retry_policy is not None:
            request.retry_policy.CopyFrom(_convert.retry_policy_to_pb(retry_policy))
        if queue_timeout_seconds is not None:
            request.queue_timeout_seconds = queue_timeout_seconds
        try:
            response = await self._stub.SubmitTask(request, timeout=30)
        except aio.AioRpcError as error:
            raise _error_from(error, capability, task.task_id) from error
        # The daemon enforces deadlines and reports them as updates; this handle keeps none of its own.
        handle = AsyncTaskHandle(task_id=response.task_id, capability=capability, params=params, timeout_seconds=0)
        handle.assign(response.worker_id, response.worker_address)
        handle.canceller = self._cancel
        follower = asyncio.create_task(self._follow(handle), name=f"watch-{handle.task_id}")
        self._followers.add(follower)
        follower.add_done_callback(self._followers.discard)
        return handle

    async def task(self, task_id: str) -> TaskRecord:
        """Where a task stands on the daemon, finished or not (see `AsyncOrchestrator.task`).

        Raises:
            TaskNotFoundError: the daemon does not know the task.
            OrchestratorUnavailableError: the daemon could not be reached.
        """
        try:
            record = await self._stub.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=10)
        except aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                raise TaskNotFoundError(task_id, "the orchestrator") from error
            raise self._unavailable(error) from error
        return _convert.record_from_pb(record)

    async def tasks(
        self,
        *,
        status: TaskStatus | Iterable[TaskStatus] | None = None,
        capability: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TaskRecord]:
        """The daemon's task records, most recently submitted first (see `AsyncOrchestrator.tasks`)."""
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
        request = pb.ListTasksRequest(
            statuses=[int(s) for s in statuses_of(status)],  # type: ignore[misc]  # TaskStatus mirrors the proto enum
            capability=capability or "",
            limit=limit,
            page_token=str(offset) if offset else "",
        )
        try:
            response = await self._stub.ListTasks(request, timeout=30)
        except aio.AioRpcError as error:
            raise self._unavailable(error) from error
        return [_convert.record_from_pb(r) for r in response.tasks], bool(response.next_page_token)

    async def worker_health(self) -> list[WorkerHealth]:
        """Every live worker as the daemon sees it: standing, circuit breaker, its tasks there."""
        try:
            response = await self._stub.ListWorkers(empty_pb2.Empty(), timeout=10)
        except aio.AioRpcError as error:
            raise self._unavailable(error) from error
        return [_convert.health_from_pb(h) for h in response.workers]

    async def dead_letters(self) -> list[DeadLetter]:
        """The daemon's dead letters."""
        try:
            letters = await self._stub.ListDeadLetters(empty_pb2.Empty(), timeout=10)
        except aio.AioRpcError as error:
            raise self._unavailable(error) from error
        return [_convert.dead_letter_from_pb(entry) for entry in letters.entries]

    async def requeue_dead_letter(self, task_id: str) -> AsyncTaskHandle:
        """Submit a dead-lettered task again (a new task id) and follow it.

        Raises:
            TaskNotFoundError: no dead letter has this id.
        """
        try:
            response = await self._stub.RequeueDeadLetter(pb.DeadLetterRequest(task_id=task_id), timeout=30)
        except aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                raise TaskNotFoundError(task_id, "the dead-letter queue") from error
            raise _error_from(error, "", task_id) from error
        handle = await self.watch(response.task_id)
        handle.assign(response.worker_id, response.worker_address)
        return handle

    async def purge_dead_letters(self, task_ids: Iterable[str] | None = None) -> int:
        """Drop dead letters (all, or those given); returns how many were dropped."""
        request = pb.PurgeDeadLettersRequest(task_ids=list(task_ids or ()))
        try:
            response = await self._stub.PurgeDeadLetters(request, timeout=10)
        except aio.AioRpcError as error:
            raise self._unavailable(error) from error
        return int(response.purged)

    async def watch(self, task_id: str) -> AsyncTaskHandle:
        """A handle on a task the daemon holds (e.g. to follow it again after a restart on either side)."""
        handle = AsyncTaskHandle(task_id=task_id, capability="", params={}, timeout_seconds=0)
        handle.canceller = self._cancel
        follower = asyncio.create_task(self._follow(handle), name=f"watch-{task_id}")
        self._followers.add(follower)
        follower.add_done_callback(self._followers.discard)
        return handle

    async def cancel(self, task_id: str, reason: str = "") -> bool:
        """Cancel a task held by the daemon; see `AsyncTaskHandle.cancel`.

        Raises:
            TaskNotFoundError: the daemon does not know the task.
            OrchestratorUnavailableError: the daemon could not be reached.
        """
        try:
            response = await self._stub.CancelTask(pb.CancelTaskRequest(task_id=task_id, reason=reason), timeout=10)
        except aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                raise TaskNotFoundError(task_id, "the orchestrator") from error
            raise self._unavailable(error) from error
        return bool(response.canceled)

    def _unavailable(self, error: aio.AioRpcError) -> OrchestratorUnavailableError:
        return OrchestratorUnavailableError(f"orchestrator {self.address}: {error.details()}")

    async def _cancel(self, handle: AsyncTaskHandle, reason: str) -> bool:
        return await self.cancel(handle.task_id, reason)

    async def _follow(self, handle: AsyncTaskHandle) -> None:
        lost_since: float | None = None
        loop = asyncio.get_running_loop()
        while not handle.done():
            request = pb.WatchTaskRequest(task_id=handle.task_id, after_sequence=handle.last_sequence)
            try:
                async for message in self._stub.WatchTask(request):
                    lost_since = None
                    error_type = message.metadata.get(ERROR_KEY, "")
                    if error_type == TaskRejectedError.__name__:
                        handle.reject(message.error_message)
                        return
                    update = _convert.update_from_pb(message)
                    if update.worker_id and update.worker_id != handle.worker_id:
                        handle.worker_id = update.worker_id
                    handle.deliver(update)
            except aio.AioRpcError as error:
                if error.code() is not grpc.StatusCode.UNAVAILABLE:
                    handle.lost(f"orchestrator {self.address}: {error.code().name}: {error.details()}")
                    return
            if handle.done():
                return
            lost_since = lost_since or loop.time()
            if loop.time() - lost_since > RECONNECT_WINDOW_SECONDS:
                handle.lost(f"orchestrator {self.address} is unreachable")
                return
            await asyncio.sleep(0.2)


def _error_from(error: aio.AioRpcError, capability: str, task_id: str) -> WorkerAbstractionError:
    metadata: Any = error.trailing_metadata() or ()
    kind = next((str(entry[1]) for entry in metadata if entry[0] == ERROR_KEY), "")
    details = error.details() or ""
    if kind == InvalidParametersError.__name__:
        return InvalidParametersError([details.removeprefix("invalid task parameters: ")])
    if kind == NoWorkerError.__name__:
        return NoWorkerError(capability, headline=details)
    if kind == QueueFullError.__name__:
        full = QueueFullError(capability, 0, "orchestrator daemon")
        full.args = (details,)
        return full
    if kind == TaskRejectedError.__name__:
        return TaskRejectedError(task_id, details)
    if kind == TaskExistsError.__name__:
        return TaskExistsError(task_id)
    return OrchestratorUnavailableError(f"orchestrator: {error.code().name}: {details}")
