"""OrchestratorService over gRPC: the engine's calls on the wire (what `wa orchestrator` serves).

Requests are checked and converted here, once; handlers raise the package's errors and the server's
ErrorBoundary (`_rpc.py`) turns each into its status code, with its class and fields for the caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import empty_pb2
from grpc import aio

from worker_abstraction import _convert
from worker_abstraction._convert import bounds
from worker_abstraction._convert.limits import limits_from_pb, limits_to_pb, splits_to_pb
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.errors import InvalidParametersError
from worker_abstraction.orchestrator.daemon import asking, callers, schedules, workflows
from worker_abstraction.orchestrator.daemon.session import CallerSession
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator

Context = aio.ServicerContext[Any, Any]

_MAX_PURGE = 10_000


class OrchestratorServicer(pb_grpc.OrchestratorServiceServicer):  # type: ignore[misc]  # generated, untyped
    def __init__(self, orchestrator: AsyncOrchestrator) -> None:
        self._orchestrator = orchestrator
        self._engine = orchestrator.engine

    async def SubmitTask(self, request: pb.SubmitTaskRequest, context: Context) -> pb.SubmitTaskResponse:
        handle, duplicate = await callers.submit(self._engine, request)
        return pb.SubmitTaskResponse(
            task_id=handle.task_id,
            worker_id=handle.worker_id,
            worker_address=handle.worker_address,
            duplicate=duplicate,
        )

    async def WatchTask(self, request: pb.WatchTaskRequest, context: Context) -> AsyncIterator[pb.TaskResult]:
        _check_id(request.task_id)
        bounds.check(request)  # (after_sequence 0..2**53: the position after it always fits the int64)
        handle = await callers.watch(self._engine, request.task_id)
        # Positions in the handle's update list number the stream: gapless even for updates the
        # orchestrator made itself (a lost worker, a deadline), so resuming is exact.
        position, after, resumed = 0, request.after_sequence, handle.resumed
        async for update in handle:
            position += 1
            sequence = callers.sequence_of(position, after, resumed=resumed, terminal=update.is_terminal)
            if sequence is not None:
                yield _convert.update_to_pb(update, sequence=sequence)

    async def GetQueueStats(self, request: empty_pb2.Empty, context: Context) -> pb.QueueStats:
        depths = [
            pb.QueueDepth(capability=capability, priority=priority, waiting=waiting)
            for capability, by_priority in (await self._orchestrator.queue_depths()).items()
            for priority, waiting in by_priority.items()
        ]
        limited = [
            pb.LimitedQueue(
                capability=held.capability,
                waiting=held.waiting,
                starts_in_seconds=-1.0 if held.starts_in_seconds is None else held.starts_in_seconds,
                limit=held.limit,
            )
            for held in await self._orchestrator.limited_queues()
        ]
        return pb.QueueStats(depths=depths, total_waiting=sum(d.waiting for d in depths), limited=limited)

    async def CancelTask(self, request: pb.CancelTaskRequest, context: Context) -> pb.CancelTaskResponse:
        _check_id(request.task_id)
        canceled, status, message = await callers.cancel(self._engine, request.task_id, request.reason)
        if message == "already finished":
            message = "task already finished"
        return pb.CancelTaskResponse(
            task_id=request.task_id,
            canceled=canceled,
            status=int(status),  # type: ignore[arg-type]  # TaskStatus mirrors the proto enum
            message=message,
        )

    async def ListDeadLetters(self, request: empty_pb2.Empty, context: Context) -> pb.DeadLetters:
        letters = await self._orchestrator.dead_letters()
        return pb.DeadLetters(entries=[_convert.dead_letter_to_pb(d) for d in letters])

    async def RequeueDeadLetter(self, request: pb.DeadLetterRequest, context: Context) -> pb.SubmitTaskResponse:
        _check_id(request.task_id)
        handle = await self._engine.requeue_dead_letter(request.task_id)
        return pb.SubmitTaskResponse(
            task_id=handle.task_id, worker_id=handle.worker_id, worker_address=handle.worker_address
        )

    async def PurgeDeadLetters(
        self, request: pb.PurgeDeadLettersRequest, context: Context
    ) -> pb.PurgeDeadLettersResponse:
        if len(request.task_ids) > _MAX_PURGE:
            raise InvalidParametersError([f"name at most {_MAX_PURGE} task ids at once, got {len(request.task_ids)}"])
        purged = await self._orchestrator.purge_dead_letters(list(request.task_ids) or None)
        return pb.PurgeDeadLettersResponse(purged=purged)

    async def GetTask(self, request: pb.GetTaskRequest, context: Context) -> pb.TaskRecord:
        _check_id(request.task_id)
        await callers.check_visible(self._engine, request.task_id)
        return _convert.record_to_pb(await self._engine.task(request.task_id))

    async def ListTasks(self, request: pb.ListTasksRequest, context: Context) -> pb.ListTasksResponse:
        query = callers.scoped(_convert.query_from_list_request(request))
        records, more = await self._engine.task_page(query)
        next_token = str(query.offset + query.limit) if more else ""
        return pb.ListTasksResponse(tasks=[_convert.record_to_pb(r) for r in records], next_page_token=next_token)

    async def OpenSession(
        self, request_iterator: AsyncIterator[pb.SessionRequest], context: Context
    ) -> AsyncIterator[pb.SessionResponse]:
        async def stop(reason: str) -> None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, reason)

        async for response in CallerSession(self._engine, stop=stop).serve(request_iterator):
            yield response

    async def ListWorkers(self, request: empty_pb2.Empty, context: Context) -> pb.WorkerHealthList:
        health = await self._orchestrator.worker_health()
        return pb.WorkerHealthList(workers=[_convert.health_to_pb(h) for h in health])

    # ---- workflows (see `workflows.py`) ----------------------------------------------------------------

    async def RunWorkflow(self, request: pb.RunWorkflowRequest, context: Context) -> pb.RunWorkflowResponse:
        return await workflows.run(self._engine, request)

    async def GetWorkflow(self, request: pb.GetWorkflowRequest, context: Context) -> pb.WorkflowRun:
        return await workflows.get(self._engine, request)

    async def ListWorkflows(self, request: pb.ListWorkflowsRequest, context: Context) -> pb.ListWorkflowsResponse:
        return await workflows.page(self._engine, request)

    async def WatchWorkflow(
        self, request: pb.WatchWorkflowRequest, context: Context
    ) -> AsyncIterator[pb.WorkflowEvent]:
        async for event in workflows.watch(self._engine, request):
            yield event

    async def CancelWorkflow(self, request: pb.CancelWorkflowRequest, context: Context) -> pb.CancelWorkflowResponse:
        return await workflows.cancel(self._engine, request)

    async def RerunWorkflow(self, request: pb.RerunWorkflowRequest, context: Context) -> pb.RunWorkflowResponse:
        return await workflows.rerun(self._engine, request)

    # ---- limits (operators only: see `auth.RULES`) --------------------------------------------------------

    async def ListLimits(self, request: empty_pb2.Empty, context: Context) -> pb.Limits:
        return limits_to_pb(await self._orchestrator.limits())

    async def SetLimits(self, request: pb.Limits, context: Context) -> pb.Limits:
        bounds.check(request)
        made = limits_from_pb(request)
        return limits_to_pb(await self._orchestrator.set_limits(*made.rate_limits, *made.concurrency_limits))

    async def RemoveLimits(self, request: pb.RemoveLimitsRequest, context: Context) -> pb.Limits:
        if not 1 <= len(request.capability) <= 256:
            raise InvalidParametersError(["capability must name a capability (1-256 characters)"])
        return limits_to_pb(await self._orchestrator.remove_limits(request.capability))

    async def ListVersionSplits(self, request: empty_pb2.Empty, context: Context) -> pb.VersionSplits:
        return splits_to_pb(await self._orchestrator.version_splits())

    async def SetVersionSplit(self, request: pb.VersionSplit, context: Context) -> pb.VersionSplits:
        bounds.check(request)
        return splits_to_pb(await self._orchestrator.set_version_split(request.capability, dict(request.weights)))

    # ---- schedules (see `schedules.py`) ----------------------------------------------------------------

    async def CreateSchedule(self, request: pb.ScheduleRequest, context: Context) -> pb.ScheduleRecord:
        return await schedules.create(self._orchestrator.timetable, request)

    async def UpdateSchedule(self, request: pb.ScheduleRequest, context: Context) -> pb.ScheduleRecord:
        return await schedules.update(self._orchestrator.timetable, request)

    async def GetSchedule(self, request: pb.ScheduleName, context: Context) -> pb.ScheduleRecord:
        return await schedules.get(self._orchestrator.timetable, request)

    async def ListSchedules(self, request: empty_pb2.Empty, context: Context) -> pb.ScheduleList:
        return await schedules.listed(self._orchestrator.timetable)

    async def PauseSchedule(self, request: pb.ScheduleName, context: Context) -> pb.ScheduleRecord:
        return await schedules.pause(self._orchestrator.timetable, request)

    async def ResumeSchedule(self, request: pb.ResumeScheduleRequest, context: Context) -> pb.ScheduleRecord:
        return await schedules.resume(self._orchestrator.timetable, request)

    async def DeleteSchedule(self, request: pb.ScheduleName, context: Context) -> pb.DeleteScheduleResponse:
        return await schedules.delete(self._orchestrator.timetable, request)

    async def TriggerSchedule(self, request: pb.ScheduleName, context: Context) -> pb.SubmitTaskResponse:
        return await schedules.trigger(self._orchestrator.timetable, request)

    async def ProvideInput(self, request: pb.ProvideInputRequest, context: Context) -> pb.ProvideInputResponse:
        return await asking.provide_input(self._engine, request)

    async def ApproveTask(self, request: pb.ApprovalRequest, context: Context) -> pb.ApprovalResponse:
        return await asking.decide(self._engine, request, approved=True)

    async def DenyTask(self, request: pb.ApprovalRequest, context: Context) -> pb.ApprovalResponse:
        return await asking.decide(self._engine, request, approved=False)

    async def ClaimTask(self, request: pb.ClaimRequest, context: Context) -> pb.TaskRecord:
        return await asking.claim(self._engine, request)


def _check_id(task_id: str) -> None:
    workflows.check_id(task_id, "task_id")
