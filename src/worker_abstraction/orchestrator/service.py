"""OrchestratorService: one orchestrator's queue and tasks, shared over gRPC (what `wa orchestrator` runs)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
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
    QueueFullError,
    TaskExistsError,
    TaskNotFoundError,
    TaskRejectedError,
    TaskTimeoutError,
    WorkerAbstractionError,
)
from worker_abstraction.orchestrator.client import AsyncOrchestrator
from worker_abstraction.orchestrator.handle import ERROR_KEY, AsyncTaskHandle
from worker_abstraction.orchestrator.records import finished_handle
from worker_abstraction.stores.sqlite import SqliteTaskStore
from worker_abstraction.types import TaskStatus

logger = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]

_STATUS = {
    InvalidParametersError: grpc.StatusCode.INVALID_ARGUMENT,
    NoWorkerError: grpc.StatusCode.FAILED_PRECONDITION,
    TaskRejectedError: grpc.StatusCode.FAILED_PRECONDITION,
    QueueFullError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TaskExistsError: grpc.StatusCode.ALREADY_EXISTS,
}
MAX_PAGE = 1000  # ListTasks page size bound
_KNOWN_STATUSES = frozenset(int(s) for s in TaskStatus)


class OrchestratorServicer(pb_grpc.OrchestratorServiceServicer):  # type: ignore[misc]  # generated, untyped
    def __init__(self, orchestrator: AsyncOrchestrator) -> None:
        self._orchestrator = orchestrator

    async def SubmitTask(self, request: pb.SubmitTaskRequest, context: Context) -> pb.SubmitTaskResponse:
        task = request.task
        try:
            params = {p.key: json.loads(p.value_json) for p in task.parameters}
        except json.JSONDecodeError as error:
            await _abort(context, InvalidParametersError([f"a parameter's value_json is not valid JSON: {error}"]))
        try:
            retry = _convert.retry_policy_from_pb(request.retry_policy) if request.HasField("retry_policy") else None
        except InvalidParametersError as error:
            await _abort(context, InvalidParametersError([f"retry_policy: {error}"]))
        key = request.idempotency_key or None
        known = await self._orchestrator.find_idempotent(key) if key else None
        if known is not None:
            return pb.SubmitTaskResponse(
                task_id=known.task_id, worker_id=known.worker_id, worker_address=known.worker_address, duplicate=True
            )
        queue_timeout = request.queue_timeout_seconds if request.HasField("queue_timeout_seconds") else None
        try:
            handle = await self._orchestrator.execute_task(
                task.capability_name,
                params,
                timeout_seconds=task.timeout_seconds,
                priority=task.priority,
                fairness_key=task.fairness_key,
                required_tags=list(task.required_tags),
                preferred_tags=list(task.preferred_tags),
                worker_id=task.worker_id or None,
                metadata=dict(task.metadata),
                task_id=task.task_id or None,
                retry_policy=retry,
                queue_timeout_seconds=queue_timeout,
                idempotency_key=key,
            )
        except (InvalidParametersError, NoWorkerError, QueueFullError, TaskRejectedError, TaskExistsError) as error:
            await _abort(context, error)
        return pb.SubmitTaskResponse(
            task_id=handle.task_id, worker_id=handle.worker_id, worker_address=handle.worker_address
        )

    async def WatchTask(self, request: pb.WatchTaskRequest, context: Context) -> AsyncIterator[pb.TaskResult]:
        handle = await self._lookup(request.task_id, context)
        # Positions in the handle's update list number the stream: gapless even for updates the
        # orchestrator made itself (a lost worker, a deadline), so resuming is exact. A deadline or a
        # refusal ends with a FAILED update naming the error type in ERROR_KEY.
        position, after = 0, request.after_sequence
        with contextlib.suppress(TaskTimeoutError):
            async for update in handle:
                position += 1
                if position > after:
                    yield _convert.update_to_pb(update, sequence=position)
                elif update.is_terminal:
                    # After a restart of this daemon the positions start again: a watcher resuming from an
                    # older, longer stream must still hear how the task ended.
                    yield _convert.update_to_pb(update, sequence=after + 1)

    async def GetQueueStats(self, request: empty_pb2.Empty, context: Context) -> pb.QueueStats:
        depths = [
            pb.QueueDepth(capability=capability, priority=priority, waiting=waiting)
            for capability, by_priority in self._orchestrator.queue_depths().items()
            for priority, waiting in by_priority.items()
        ]
        return pb.QueueStats(depths=depths, total_waiting=sum(d.waiting for d in depths))

    async def CancelTask(self, request: pb.CancelTaskRequest, context: Context) -> pb.CancelTaskResponse:
        handle = await self._lookup(request.task_id, context)
        status = f"TASK_STATUS_{handle.status.name}"
        canceled = await handle.cancel(request.reason)
        message = "canceling" if canceled else "task already finished"
        return pb.CancelTaskResponse(task_id=handle.task_id, canceled=canceled, status=status, message=message)

    async def ListDeadLetters(self, request: empty_pb2.Empty, context: Context) -> pb.DeadLetters:
        return pb.DeadLetters(entries=[_convert.dead_letter_to_pb(d) for d in self._orchestrator.dead_letters()])

    async def RequeueDeadLetter(self, request: pb.DeadLetterRequest, context: Context) -> pb.SubmitTaskResponse:
        try:
            handle = await self._orchestrator.requeue_dead_letter(request.task_id)
        except TaskNotFoundError as error:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        except (InvalidParametersError, NoWorkerError, QueueFullError, TaskRejectedError) as error:
            await _abort(context, error)
        return pb.SubmitTaskResponse(
            task_id=handle.task_id, worker_id=handle.worker_id, worker_address=handle.worker_address
        )

    async def PurgeDeadLetters(
        self, request: pb.PurgeDeadLettersRequest, context: Context
    ) -> pb.PurgeDeadLettersResponse:
        purged = self._orchestrator.purge_dead_letters(list(request.task_ids) or None)
        return pb.PurgeDeadLettersResponse(purged=purged)

    async def GetTask(self, request: pb.GetTaskRequest, context: Context) -> pb.TaskRecord:
        try:
            record = await self._orchestrator.task(request.task_id)
        except TaskNotFoundError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.task_id!r} is unknown to this orchestrator")
        return _convert.record_to_pb(record)

    async def ListTasks(self, request: pb.ListTasksRequest, context: Context) -> pb.ListTasksResponse:
        if request.limit < 0 or request.limit > MAX_PAGE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"limit must be 0..{MAX_PAGE}, got {request.limit}")
        try:
            offset = int(request.page_token or 0)
        except ValueError:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"page_token {request.page_token!r} is not one this daemon gave out"
            )
        limit = request.limit or 100
        statuses = [TaskStatus(s) for s in request.statuses if s in _KNOWN_STATUSES]
        records, more = await self._orchestrator.task_page(
            status=statuses, capability=request.capability or None, limit=limit, offset=offset
        )
        return pb.ListTasksResponse(
            tasks=[_convert.record_to_pb(r) for r in records], next_page_token=str(offset + limit) if more else ""
        )

    async def ListWorkers(self, request: empty_pb2.Empty, context: Context) -> pb.WorkerHealthList:
        return pb.WorkerHealthList(workers=[_convert.health_to_pb(h) for h in self._orchestrator.worker_health()])

    async def _lookup(self, task_id: str, context: Context) -> AsyncTaskHandle:
        handle = self._orchestrator.handle(task_id)
        if handle is None:
            try:
                handle = finished_handle(await self._orchestrator.task(task_id))
            except TaskNotFoundError:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"task {task_id!r} is unknown to this orchestrator")
        return handle


async def _abort(context: Context, error: WorkerAbstractionError) -> Any:
    context.set_trailing_metadata(((ERROR_KEY, type(error).__name__),))
    await context.abort(_STATUS.get(type(error), grpc.StatusCode.INTERNAL), str(error))


class OrchestratorServer:
    """An AsyncOrchestrator serving OrchestratorService.

    Args:
        registry: host:port of the registry.
        host: interface to listen on.
        port: port to listen on; 0 picks a free one.
        store_path: SQLite file keeping accepted tasks across restarts (None: memory only).
        options: passed to AsyncOrchestrator (queue bounds, aging, ...).
    """

    def __init__(
        self,
        registry: str,
        host: str = "127.0.0.1",
        port: int = 50052,
        *,
        store_path: str | None = None,
        **options: Any,
    ) -> None:
        self.host, self.port = host, port
        self._store = SqliteTaskStore(store_path) if store_path else None
        self.orchestrator = AsyncOrchestrator(registry, task_store=self._store, **options)
        self._server = _rpc.new_server()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        if self._store is not None:
            await self._store.open()
        await self.orchestrator.start()
        servicer = OrchestratorServicer(self.orchestrator)
        pb_grpc.add_OrchestratorServiceServicer_to_server(servicer, self._server)
        self.port = _rpc.bind(self._server, self.host, self.port)
        await self._server.start()
        logger.info("orchestrator listening on %s (registry %s)", self.address, self.orchestrator.registry)

    async def stop(self, grace_seconds: float | None = 1.0) -> None:
        await self._server.stop(grace_seconds)
        await self.orchestrator.aclose()
        if self._store is not None:
            await self._store.close()

    async def wait_for_termination(self) -> None:
        # Shielded: canceling this wait must not cancel gRPC's own shutdown future, which stop() awaits.
        await asyncio.shield(self._server.wait_for_termination())

    async def __aenter__(self) -> OrchestratorServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
