"""WorkerService over gRPC: accept or reject tasks, stream their updates, describe the worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any

import grpc
from google.protobuf import empty_pb2
from grpc import aio

from worker_abstraction import _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.capability import CapabilityDef
from worker_abstraction.types import TaskStatus, WorkerInfo
from worker_abstraction.worker.channel import ChannelSession
from worker_abstraction.worker.runner import run_task
from worker_abstraction.worker.tasks import ResumeOutOfRangeError, TaskRecord, TaskTable

logger = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]


class WorkerServicer(pb_grpc.WorkerServiceServicer):  # type: ignore[misc]  # generated, untyped
    def __init__(
        self,
        owner: object,
        capabilities: dict[str, CapabilityDef],
        describe: Callable[[], WorkerInfo],
        executor: Executor,
        *,
        max_concurrent_tasks: int = 0,
        cancel_grace_seconds: float = 5.0,
    ) -> None:
        self.max_concurrent_tasks = max_concurrent_tasks
        self.cancel_grace_seconds = cancel_grace_seconds
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._owner = owner
        self._capabilities = capabilities
        self._describe = describe
        self._worker_id = describe().worker_id
        self._executor = executor
        self.tasks = TaskTable()
        self.received = 0  # tasks offered to this worker, accepted or not
        self.accepting = True
        self._running: set[asyncio.Task[None]] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def load(self) -> int:
        return self.tasks.active

    async def ExecuteTask(self, request: pb.ExecuteTaskRequest, context: Context) -> pb.ExecuteTaskResponse:
        if not request.task.task_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "task.task_id is empty; give every task an id")
        response, _ = self.accept(request.task)
        if response.reject_reason == pb.REJECT_REASON_RESOURCE_EXHAUSTED:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, response.message)
        return response

    async def OpenTaskChannel(
        self, request_iterator: AsyncIterator[pb.TaskChannelRequest], context: Context
    ) -> AsyncIterator[pb.TaskChannelResponse]:
        async for response in ChannelSession(self.accept).serve(request_iterator):
            yield response

    def accept(self, task: pb.Task) -> tuple[pb.ExecuteTaskResponse, TaskRecord | None]:
        """Validate a task and start it; returns the task's record to stream (None: nothing to stream).

        The same attempt delivered again (a retried call, or an orchestrator that restarted before it noted
        the first delivery) is not run twice, but its record is returned so the new sender hears its updates.
        """
        self.received += 1
        if not task.task_id:
            return pb.ExecuteTaskResponse(accepted=False, message="task.task_id is empty; give every task an id"), None
        known = self.tasks.get(task.task_id)
        if known is not None and (task.attempt <= known.attempt or not known.is_terminal):
            # Delivering the same attempt twice (a retried RPC) must not run it twice; a newer attempt of a
            # task that ended here (a retry landing on the same worker) runs afresh below.
            again = pb.ExecuteTaskResponse(task_id=task.task_id, accepted=True, message="already accepted")
            return again, known if task.attempt == known.attempt else None
        code, reason, arguments = self._check(task)
        if reason:
            logger.debug("rejected task %s: %s", task.task_id, reason, extra={"task_id": task.task_id})
            return pb.ExecuteTaskResponse(
                task_id=task.task_id, accepted=False, message=reason, reject_reason=code
            ), None
        definition = self._capabilities[task.capability_name]
        record = TaskRecord(task.task_id, task.capability_name, self._worker_id, task.attempt)
        self.tasks.add(record)
        self.idle.clear()
        runner = asyncio.create_task(
            run_task(
                record,
                definition,
                self._owner,
                arguments,
                timeout_seconds=max(0, task.timeout_seconds),
                metadata=task.metadata,
                executor=self._executor,
            ),
            name=f"task-{task.task_id}",
        )
        self._running.add(runner)
        self._runners[record.task_id] = runner
        runner.add_done_callback(lambda done: self._finished(done, record))
        return pb.ExecuteTaskResponse(task_id=task.task_id, accepted=True, message="accepted"), record

    def _check(self, task: pb.Task) -> tuple[pb.RejectReason, str, dict[str, Any]]:
        if not self.accepting:
            return pb.REJECT_REASON_SHUTTING_DOWN, "worker is shutting down", {}
        definition = self._capabilities.get(task.capability_name)
        if definition is None:
            offered = ", ".join(sorted(self._capabilities)) or "none"
            reason = f"unknown capability {task.capability_name!r} (this worker offers: {offered})"
            return pb.REJECT_REASON_INVALID_TASK, reason, {}
        if self.max_concurrent_tasks and self.tasks.active >= self.max_concurrent_tasks:
            reason = f"worker at capacity: {self.tasks.active}/{self.max_concurrent_tasks} tasks running"
            return pb.REJECT_REASON_RESOURCE_EXHAUSTED, reason, {}
        limit = definition.spec.max_concurrent_tasks
        running = self.tasks.active_by_capability.get(task.capability_name, 0)
        if limit and running >= limit:
            reason = f"capability {task.capability_name!r} at capacity: {running}/{limit} tasks running"
            return pb.REJECT_REASON_RESOURCE_EXHAUSTED, reason, {}
        values = {}
        duplicates = []
        for parameter in task.parameters:
            if parameter.key in values:
                duplicates.append(f"parameter {parameter.key!r} given twice")
            values[parameter.key] = parameter.value_json
        arguments, problems = definition.parse_arguments(values)
        problems = duplicates + problems
        return pb.REJECT_REASON_INVALID_TASK, "; ".join(problems), arguments

    def _finished(self, runner: asyncio.Task[None], record: TaskRecord) -> None:
        self._running.discard(runner)
        self._runners.pop(record.task_id, None)
        self.tasks.finish(record)
        if not runner.cancelled() and runner.exception() is not None:
            logger.error("task %s runner crashed", record.task_id, exc_info=runner.exception())
        if not self._running:
            self.idle.set()

    async def cancel_running(self) -> None:
        """Cancel every task still running (used after the shutdown grace period)."""
        for runner in list(self._running):
            runner.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def CancelTask(self, request: pb.CancelTaskRequest, context: Context) -> pb.CancelTaskResponse:
        record = self.tasks.get(request.task_id)
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.task_id!r} is unknown to this worker")
        status = f"TASK_STATUS_{record.status.name}"  # the enum by name: TaskStatus mirrors it
        if record.is_terminal:
            return pb.CancelTaskResponse(
                task_id=record.task_id, canceled=False, status=status, message="task already finished"
            )
        self.cancel(record, request.reason or "canceled on request")
        return pb.CancelTaskResponse(task_id=record.task_id, canceled=True, status=status, message="canceling")

    def cancel(self, record: TaskRecord, reason: str) -> None:
        """Ask the handler to stop (its context sees it), and stop it after the grace period."""
        if record.cancel_requested.is_set():
            return
        record.cancel_reason = reason
        record.cancel_requested.set()
        runner = self._runners.get(record.task_id)
        if runner is None:
            return
        if record.status is TaskStatus.PENDING:
            runner.cancel()  # not started yet: nothing to clean up
        else:
            asyncio.get_running_loop().call_later(self.cancel_grace_seconds, runner.cancel)

    async def StreamTaskStatus(
        self, request: pb.GetTaskStatusRequest, context: Context
    ) -> AsyncIterator[pb.StreamTaskStatusResponse]:
        record = self.tasks.get(request.task_id)
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.task_id!r} is unknown to this worker")
        try:
            async for update in record.follow(request.after_sequence, from_start=request.from_start):
                yield pb.StreamTaskStatusResponse(result=update)
        except ResumeOutOfRangeError as error:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(error))

    async def GetWorkerInfo(self, request: empty_pb2.Empty, context: Context) -> pb.WorkerInfo:
        message = _convert.worker_to_pb(self._describe())
        message.last_heartbeat.CopyFrom(_convert.now_timestamp())
        return message
