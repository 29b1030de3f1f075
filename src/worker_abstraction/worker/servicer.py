"""WorkerService over gRPC: accept or reject tasks, stream their updates, describe the worker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any

import grpc
from google.protobuf import empty_pb2
from grpc import aio
from opentelemetry import trace
from opentelemetry.trace import Span

from worker_abstraction import _convert, _memory
from worker_abstraction._convert import bounds
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.capability import CapabilityDef
from worker_abstraction.codec import short
from worker_abstraction.errors import InvalidAnswerError, TaskNotWaitingError
from worker_abstraction.observability import tracing
from worker_abstraction.observability.metrics import WorkerMetrics
from worker_abstraction.options import MAX_ID_LENGTH
from worker_abstraction.types import TaskStatus, WorkerInfo
from worker_abstraction.worker import admission, failures, tasklog
from worker_abstraction.worker.channel import ChannelSession
from worker_abstraction.worker.runner import cut_short, run_task
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
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.max_concurrent_tasks = max_concurrent_tasks
        self.cancel_grace_seconds = cancel_grace_seconds
        # By record, not task id: a finished record's runner may still be cleaning up when a new record of
        # the same id starts.
        self._runners: dict[TaskRecord, asyncio.Task[None]] = {}
        self._owner = owner
        self._capabilities = capabilities
        self._describe = describe
        self._worker_id = describe().worker_id
        self._executor = executor
        self._metrics = metrics
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

        The same delivery again (same id, attempt and fingerprint: a retried call, or an orchestrator that
        restarted before it noted the first delivery) is not run twice, but its record is returned so the new
        sender hears its updates. Any other delivery of a known id is refused or run afresh (`_redelivery`).
        """
        self.received += 1
        # Invalid is refused first, even under the id of a task this worker knows: a redelivery is the same
        # valid task, never a licence for fields its first delivery did not have.
        arguments, problems = admission.check(task, self._capabilities)
        _memory.handled(sum(len(parameter.value_json) for parameter in task.parameters))
        if problems:
            return _refuse(task, pb.REJECT_REASON_INVALID_TASK, "; ".join(problems)), None
        fingerprint = admission.fingerprint(task)
        known = self.tasks.get(task.task_id)
        if known is not None:
            answer = self._redelivery(task, fingerprint, known)
            if answer is not None:
                return answer
        code, reason = self._check_room(task)
        if reason:
            return _refuse(task, code, reason), None
        definition = self._capabilities[task.capability_name]
        record = TaskRecord(task.task_id, task.capability_name, self._worker_id, task.attempt, fingerprint)
        self.tasks.add(record)  # replaces a finished record of the same id, if any
        self.idle.clear()
        span = None
        if tracing.enabled():  # the handler's span continues the attempt that sent the task
            span = tracing.handler_span(
                task.task_id, task.capability_name, self._worker_id, task.attempt, task.trace_context
            )
        if span is None:  # (before the runner starts: the line is out before the handler runs)
            tasklog.received(record)
        else:
            with trace.use_span(span, end_on_exit=False):  # so the line carries the task's trace id
                tasklog.received(record)
        runner = asyncio.create_task(
            run_task(
                record,
                definition,
                self._owner,
                arguments,
                timeout_seconds=task.timeout_seconds,  # 0..MAX_TIMEOUT_SECONDS: checked by admission
                metadata=task.metadata,
                session=(task.session_key, task.session_moved),
                executor=self._executor,
                span=span,
            ),
            name=f"task-{task.task_id}",
        )
        self._running.add(runner)
        self._runners[record] = runner
        started = time.perf_counter() if self._metrics is not None else 0.0
        runner.add_done_callback(lambda done: self._finished(done, record, started, span))
        return pb.ExecuteTaskResponse(task_id=task.task_id, accepted=True, message="accepted"), record

    def _redelivery(
        self, task: pb.Task, fingerprint: int, known: TaskRecord
    ) -> tuple[pb.ExecuteTaskResponse, TaskRecord | None] | None:
        """The answer to a task whose id this worker knows; None: run it afresh as a new record."""
        if task.attempt < known.attempt:
            # An older attempt after a newer one was seen is a stale delivery (a late retried call); running it
            # would resurrect an attempt the orchestrator has superseded.
            reason = f"attempt {task.attempt} is older than attempt {known.attempt} already seen"
            return _refuse(task, pb.REJECT_REASON_INVALID_TASK, reason), None
        if task.attempt == known.attempt and fingerprint == known.fingerprint:
            return pb.ExecuteTaskResponse(task_id=task.task_id, accepted=True, message="already accepted"), known
        if known.status is TaskStatus.COMPLETED and fingerprint == known.fingerprint:
            # The same task completed here under an earlier attempt whose end its orchestrator never heard (it
            # restarted, or another took the task over): the newer attempt gets that outcome, and the handler
            # does not run again.
            record = TaskRecord(task.task_id, task.capability_name, self._worker_id, task.attempt, fingerprint)
            record.running()
            record.completed(known.log[-1].output_json)
            self.tasks.add(record)
            self.tasks.finish(record)  # (it ran nothing: added and finished at once, for the counters)
            return pb.ExecuteTaskResponse(task_id=task.task_id, accepted=True, message="already completed"), record
        if not known.is_terminal:
            # Two records cannot share an id while both run; the sender may try later or elsewhere.
            reason = f"an earlier attempt of task {short(task.task_id)} is still running on this worker"
            return _refuse(task, pb.REJECT_REASON_RESOURCE_EXHAUSTED, reason), None
        return None  # a newer attempt, or a new task reusing the id, after the known one finished

    def _check_room(self, task: pb.Task) -> tuple[pb.RejectReason, str]:
        """Why a valid task cannot be taken now (reason and message; an empty message: it can)."""
        if not self.accepting:
            return pb.REJECT_REASON_SHUTTING_DOWN, "worker is shutting down"
        if self.max_concurrent_tasks and self.tasks.active >= self.max_concurrent_tasks:
            reason = f"worker at capacity: {self.tasks.active}/{self.max_concurrent_tasks} tasks running"
            return pb.REJECT_REASON_RESOURCE_EXHAUSTED, reason
        limit = self._capabilities[task.capability_name].spec.max_concurrent_tasks
        running = self.tasks.active_by_capability.get(task.capability_name, 0)
        if limit and running >= limit:
            reason = f"capability {task.capability_name!r} at capacity: {running}/{limit} tasks running"
            return pb.REJECT_REASON_RESOURCE_EXHAUSTED, reason
        return pb.REJECT_REASON_UNSPECIFIED, ""

    def _finished(self, runner: asyncio.Task[None], record: TaskRecord, started: float, span: Span | None) -> None:
        self._running.discard(runner)
        del self._runners[record]
        error = None if runner.cancelled() else runner.exception()
        if error is not None:
            extra = {"task_id": record.task_id, "capability": record.capability}
            logger.error("task %s[%s] runner crashed", record.capability, record.task_id, exc_info=error, extra=extra)
        try:
            if not record.is_terminal:
                # run_task ends every task it runs; this one never ran (canceled before its first step) or its
                # runner broke. Either way the task must still end, or its subscribers wait for ever.
                if runner.cancelled():
                    failure = cut_short(record)
                    record.canceled(failure)
                    tasklog.canceled(record, failure, None)
                else:
                    record.failed(failures.worker_error(error or RuntimeError("task runner ended without an outcome")))
        finally:
            if span is not None and span.is_recording():  # its runner never started, so never ended it
                tracing.end(span, record.status.name)
            self.tasks.finish(record)
            if self._metrics is not None and record.is_terminal:
                self._metrics.task_finished(record.capability, record.status, time.perf_counter() - started)
            if not self._running:
                self.idle.set()

    async def cancel_running(self) -> None:
        """Cancel every task still running (used after the shutdown grace period)."""
        for runner in list(self._running):
            runner.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def CancelTask(self, request: pb.CancelTaskRequest, context: Context) -> pb.CancelTaskResponse:
        await _check_id(request.task_id, context)
        if len(request.reason) > _MAX_CANCEL_REASON:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"reason may be at most {_MAX_CANCEL_REASON} characters, got {len(request.reason):,}",
            )
        record = self.tasks.get(request.task_id)
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"task {short(request.task_id)} is unknown to this worker")
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
        extra = {"task_id": record.task_id, "capability": record.capability}
        logger.debug("task %s[%s] cancel requested: %s", record.capability, record.task_id, reason, extra=extra)
        runner = self._runners.get(record)
        if runner is None:
            return
        if record.status is TaskStatus.PENDING:
            runner.cancel()  # not started yet: nothing to clean up
        else:
            asyncio.get_running_loop().call_later(self.cancel_grace_seconds, runner.cancel)

    async def ProvideInput(self, request: pb.ProvideInputRequest, context: Context) -> pb.ProvideInputResponse:
        await _check_id(request.task_id, context)
        problems = bounds.problems(request)
        if problems:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(problems))
        record = self.tasks.get(request.task_id)
        if record is None or (request.attempt and request.attempt != record.attempt):
            where = "this worker" if record is None else f"this worker as attempt {request.attempt}"
            await context.abort(grpc.StatusCode.NOT_FOUND, f"task {short(request.task_id)} is unknown to {where}")
        if record.questions is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"task {short(request.task_id)} waits for no input"
            )
        try:
            answer = record.questions.answer(request.request_id, request.value_json, request.answered_by)
        except (TaskNotWaitingError, InvalidAnswerError) as error:
            code = grpc.StatusCode.INVALID_ARGUMENT if isinstance(error, InvalidAnswerError) else None
            await context.abort(code or grpc.StatusCode.FAILED_PRECONDITION, str(error)[:900])
        return pb.ProvideInputResponse(
            task_id=record.task_id, request_id=answer.request_id, status=pb.TASK_STATUS_RUNNING
        )

    async def StreamTaskStatus(
        self, request: pb.GetTaskStatusRequest, context: Context
    ) -> AsyncIterator[pb.StreamTaskStatusResponse]:
        await _check_id(request.task_id, context)
        problems = bounds.problems(request)
        if problems:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(problems))
        record = self.tasks.get(request.task_id)
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"task {short(request.task_id)} is unknown to this worker")
        try:
            async for update in record.follow(request.after_sequence, from_start=request.from_start):
                yield pb.StreamTaskStatusResponse(result=update)
        except ResumeOutOfRangeError as error:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(error))

    async def GetWorkerInfo(self, request: empty_pb2.Empty, context: Context) -> pb.WorkerInfo:
        message = _convert.worker_to_pb(self._describe())
        message.last_heartbeat.CopyFrom(_convert.now_timestamp())
        return message


async def _check_id(task_id: str, context: Context) -> None:
    if not task_id:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "task_id is empty; name the task")
    if len(task_id) > MAX_ID_LENGTH:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"task_id may be at most {MAX_ID_LENGTH} characters, got {len(task_id):,}: {short(task_id)}",
        )


_MAX_CANCEL_REASON = 4096


def _refuse(task: pb.Task, code: pb.RejectReason, reason: str) -> pb.ExecuteTaskResponse:
    if logger.isEnabledFor(logging.DEBUG):  # refusals come in bursts when the worker is full: no dict for nothing
        extra = {"task_id": task.task_id, "capability": task.capability_name}
        logger.debug("task %s[%s] refused: %s", task.capability_name, task.task_id, reason, extra=extra)
    if len(reason) > _MAX_REASON:  # (a reason lists problems with the input: never echo all of it)
        reason = reason[: _MAX_REASON - 20] + f"... ({len(reason):,} chars)"
    return pb.ExecuteTaskResponse(task_id=task.task_id, accepted=False, message=reason, reject_reason=code)


_MAX_REASON = 900
