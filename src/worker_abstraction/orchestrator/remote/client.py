"""RemoteOrchestrator: the same calls as AsyncOrchestrator, served by an orchestrator daemon.

Errors the daemon raises arrive as the same classes with the same fields (see `_rpc.py`); a task's
updates arrive over the session (or WatchTask, see `follow.py`) and fill the same `AsyncTaskHandle` the
embedded engine gives out.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from google.protobuf import empty_pb2
from grpc import aio
from opentelemetry.trace import SpanKind

from worker_abstraction import _convert, _rpc, limits
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.codec import encode_params, payload_bytes
from worker_abstraction.errors import (
    InvalidParametersError,
    NoWorkerError,
    OrchestratorUnavailableError,
    WorkerAbstractionError,
)
from worker_abstraction.exchanges import InputAnswer
from worker_abstraction.observability import tracing
from worker_abstraction.options import TaskOptions, options_of
from worker_abstraction.orchestrator.api import AsyncOrchestratorAPI, definition_of_workflow
from worker_abstraction.orchestrator.core.gates import ConcurrencyLimit, LimitSet, RateLimit
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.state import TaskState
from worker_abstraction.orchestrator.core.workflow_handle import WorkflowHandle
from worker_abstraction.orchestrator.remote.asking import RemoteAsking
from worker_abstraction.orchestrator.remote.follow import Followers
from worker_abstraction.orchestrator.remote.session import RemoteSession
from worker_abstraction.schedules.model import Schedule, ScheduleInfo
from worker_abstraction.tls import TLSConfig, explain
from worker_abstraction.types import (
    DeadLetter,
    LimitedQueue,
    TaskQuery,
    TaskRecord,
    TaskSpec,
    TaskStatus,
    WorkerHealth,
    WorkerInfo,
    WorkerState,
)
from worker_abstraction.workflows.canvas import Canvas
from worker_abstraction.workflows.model import WORKFLOW_CAPABILITY, Workflow
from worker_abstraction.workflows.records import WorkflowRecord

logger = logging.getLogger(__name__)

_WORKER_POLL_SECONDS = 0.1


class RemoteOrchestrator(RemoteAsking, AsyncOrchestratorAPI):
    """Submits tasks to an orchestrator daemon (`wa orchestrator`) and follows them.

    Args:
        address: host:port of the daemon's OrchestratorService.
        call_timeout_seconds: deadline of each unary call to the daemon.
        channel_factory: makes the gRPC channel (inject one to add credentials or interceptors).
        tls: connect over TLS, trusting `tls.ca` (and presenting `tls.cert` for mTLS); default plaintext.
            Not together with `channel_factory`.
    """

    def __init__(
        self,
        address: str,
        *,
        call_timeout_seconds: float = 30.0,
        channel_factory: Callable[[str], aio.Channel] = _rpc.channel,
        tls: TLSConfig | None = None,
    ) -> None:
        if tls is not None and channel_factory is not _rpc.channel:
            raise TypeError("give tls or a channel_factory, not both (the factory makes the channel's credentials)")
        self.address = address
        self.tls = tls
        self._timeout = call_timeout_seconds
        self._channel = channel_factory(address) if tls is None else _rpc.channel(address, tls)
        self._stub = pb_grpc.OrchestratorServiceStub(self._channel)
        self._session: RemoteSession | None = None
        self._opening = asyncio.Lock()
        self._unary_only = False  # the daemon has no OpenSession (an older one)
        self._followers = Followers(self._stub, self._unavailable, self._open_session, lambda: self._unary_only)

    async def start(self) -> None:
        """Nothing to start: the daemon runs the engine (calls connect on first use)."""

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.aclose()
        await self._followers.aclose()
        await self._channel.close(None)

    async def workers(self) -> list[WorkerInfo]:
        """The live workers as the daemon knows them, with their latest heartbeat and load."""
        return [health.worker for health in await self.worker_health()]

    async def wait_for_workers(
        self, capability: str | None = None, *, count: int = 1, timeout_seconds: float = 10.0
    ) -> list[WorkerInfo]:
        """Wait until the daemon has `count` workers (offering `capability`, if given) that can take tasks.

        Raises:
            NoWorkerError: not enough such workers appeared in time.
            OrchestratorUnavailableError: the daemon could not be reached.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while True:
            found = [
                h.worker
                for h in await self.worker_health()
                if h.state is WorkerState.ACTIVE and (capability is None or h.worker.offers(capability))
            ]
            if len(found) >= count:
                return found
            if loop.time() > deadline:
                raise NoWorkerError(capability or "*", f"fewer than {count} worker(s) after {timeout_seconds:g}s")
            await asyncio.sleep(_WORKER_POLL_SECONDS)

    async def worker_health(self) -> list[WorkerHealth]:
        """Every live worker as the daemon sees it: standing, circuit breaker, its tasks there."""
        response = await self._call(self._stub.ListWorkers, empty_pb2.Empty())
        return [_convert.health_from_pb(h) for h in response.workers]

    async def queue_depths(self) -> dict[str, dict[int, int]]:
        """Tasks waiting for a worker, per capability and priority."""
        stats = await self._call(self._stub.GetQueueStats, empty_pb2.Empty())
        depths: dict[str, dict[int, int]] = {}
        for depth in stats.depths:
            depths.setdefault(depth.capability, {})[depth.priority] = depth.waiting
        return depths

    async def limits(self) -> LimitSet:
        from worker_abstraction._convert.limits import limits_from_pb

        return limits_from_pb(await self._call(self._stub.ListLimits, empty_pb2.Empty()))

    async def set_limits(self, *limits: RateLimit | ConcurrencyLimit) -> LimitSet:
        from worker_abstraction._convert.limits import limits_from_pb, limits_to_pb

        rates = tuple(limit for limit in limits if isinstance(limit, RateLimit))
        concurrency = tuple(limit for limit in limits if isinstance(limit, ConcurrencyLimit))
        request = limits_to_pb(LimitSet(rates, concurrency))
        return limits_from_pb(await self._call(self._stub.SetLimits, request))

    async def remove_limits(self, capability: str) -> LimitSet:
        from worker_abstraction._convert.limits import limits_from_pb

        request = pb.RemoveLimitsRequest(capability=capability)
        return limits_from_pb(await self._call(self._stub.RemoveLimits, request))

    async def version_splits(self) -> dict[str, dict[str, int]]:
        from worker_abstraction._convert.limits import splits_from_pb

        return splits_from_pb(await self._call(self._stub.ListVersionSplits, empty_pb2.Empty()))

    async def set_version_split(self, capability: str, weights: Mapping[str, int]) -> dict[str, dict[str, int]]:
        from worker_abstraction._convert.limits import splits_from_pb

        request = pb.VersionSplit(capability=capability, weights=dict(weights))
        return splits_from_pb(await self._call(self._stub.SetVersionSplit, request))

    async def limited_queues(self) -> list[LimitedQueue]:
        stats = await self._call(self._stub.GetQueueStats, empty_pb2.Empty())
        return [
            LimitedQueue(q.capability, q.waiting, None if q.starts_in_seconds < 0 else q.starts_in_seconds, q.limit)
            for q in stats.limited
        ]

    async def _submit(self, capability: str, params: Mapping[str, Any] | None, options: TaskOptions) -> AsyncTaskHandle:
        if not tracing.enabled():
            return await self._send(capability, params, options, tracing.NO_TRACE)
        # The context goes in the submission itself: a session carries many submissions on one call.
        with tracing.submit_span(capability, kind=SpanKind.CLIENT) as span:
            handle = await self._send(capability, params, options, tracing.context_of(span))
            span.set_attribute("wa.task_id", handle.task_id)
            return handle

    async def _send(
        self,
        capability: str,
        params: Mapping[str, Any] | None,
        options: TaskOptions,
        trace_context: tracing.TraceContext,
    ) -> AsyncTaskHandle:
        if params is not None and not isinstance(params, Mapping):
            raise InvalidParametersError([f"params must be a mapping, got {type(params).__name__}"])
        values = dict(params or {})
        encoded = encode_params(values)
        problem = limits.too_large("the task's arguments", payload_bytes(encoded))
        if problem is not None:  # refused here: sent, it would break the call, and it is no fault of the daemon's
            raise InvalidParametersError([problem])
        spec = TaskSpec(options.task_id, capability, values, encoded, options, 0, trace_context=trace_context)

        def state_of(response: pb.SubmitTaskResponse) -> TaskState:
            state = TaskState(
                response.task_id,
                capability,
                values,
                timeout_seconds=options.timeout_seconds,
                queue_timeout_seconds=options.queue_timeout_seconds,
            )
            state.worker_id, state.worker_address = response.worker_id, response.worker_address
            return state

        session = await self._open_session()
        if session is not None:
            return self._handle(await session.submit(spec, state_of))
        return self._follow(state_of(await self._call(self._stub.SubmitTask, _convert.spec_to_pb(spec))))

    async def watch(self, task_id: str) -> AsyncTaskHandle:
        """A handle on a task the daemon knows, running or finished (e.g. after a restart on either side).

        Raises:
            TaskNotFoundError: the daemon does not know the task.
            OrchestratorUnavailableError: the daemon could not be reached.
        """
        record = await self.task(task_id)
        return await self._known(task_id, record.capability, record.params)

    async def _known(self, task_id: str, capability: str, params: Mapping[str, Any]) -> AsyncTaskHandle:
        """A handle following a task known to be on the daemon (one already followed: the same state, so
        every handle on it hears every update)."""
        session = await self._open_session()
        if session is not None:
            followed = session.following(task_id)
            if followed is not None:
                return self._handle(followed)
        state = TaskState(task_id, capability, params)
        if session is None:
            return self._follow(state)
        session.follow(state, 0)
        return self._handle(state)

    async def cancel(self, task_id: str, reason: str = "") -> bool:
        """Cancel a task held by the daemon; see `AsyncTaskHandle.cancel`.

        Raises:
            TaskNotFoundError: the daemon does not know the task.
            OrchestratorUnavailableError: the daemon could not be reached.
        """
        response = await self._call(self._stub.CancelTask, pb.CancelTaskRequest(task_id=task_id, reason=reason))
        return bool(response.canceled)

    async def task(self, task_id: str) -> TaskRecord:
        """Where a task stands on the daemon, finished or not (see `AsyncOrchestrator.task`).

        Raises:
            TaskNotFoundError: the daemon does not know the task.
            OrchestratorUnavailableError: the daemon could not be reached.
        """
        return _convert.record_from_pb(await self._call(self._stub.GetTask, pb.GetTaskRequest(task_id=task_id)))

    async def _page(self, query: TaskQuery) -> tuple[list[TaskRecord], bool]:
        response = await self._call(self._stub.ListTasks, _convert.list_request_to_pb(query))
        return [_convert.record_from_pb(r) for r in response.tasks], bool(response.next_page_token)

    # ---- workflows: the daemon's workflow calls; a run's handle follows the task that holds it ----------

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
        definition = definition_of_workflow(workflow)
        text = json.dumps(definition, ensure_ascii=False)
        problem = limits.too_large("the workflow", len(text.encode()))
        if problem is not None:
            raise InvalidParametersError([problem])
        # (checked here as the engine checks them, so the message says which option is wrong)
        options_of(None, {"not_before": not_before, "delay_seconds": delay_seconds, "priority": priority})
        request = pb.RunWorkflowRequest(
            definition_json=text,
            workflow_id=workflow_id,
            idempotency_key=idempotency_key,
            priority=priority,
            delay_seconds=delay_seconds,
        )
        if not_before is not None:
            _convert.set_timestamp(request.not_before, not_before)
        if not tracing.enabled():
            response = await self._call(self._stub.RunWorkflow, request)
        else:
            with tracing.submit_span(WORKFLOW_CAPABILITY, kind=SpanKind.CLIENT) as span:
                request.trace_context.update(tracing.context_of(span))
                response = await self._call(self._stub.RunWorkflow, request)
                span.set_attribute("wa.task_id", response.workflow_id)
        return WorkflowHandle(await self._known(response.workflow_id, WORKFLOW_CAPABILITY, {"workflow": definition}))

    async def workflow(self, workflow_id: str) -> WorkflowRecord:
        run = await self._call(self._stub.GetWorkflow, pb.GetWorkflowRequest(workflow_id=workflow_id))
        return _convert.run_from_pb(run)

    async def workflows(self, *, status: TaskStatus | None = None, limit: int = 100) -> list[WorkflowRecord]:
        request = pb.ListWorkflowsRequest(statuses=[] if status is None else [int(status)], limit=limit)  # type: ignore[list-item]
        response = await self._call(self._stub.ListWorkflows, request)
        return [_convert.run_from_pb(run) for run in response.workflows]

    async def cancel_workflow(self, workflow_id: str, reason: str = "") -> bool:
        request = pb.CancelWorkflowRequest(workflow_id=workflow_id, reason=reason)
        return bool((await self._call(self._stub.CancelWorkflow, request)).canceled)

    async def rerun_workflow(
        self, workflow_id: str, step: str, *, downstream: bool = True, new_workflow_id: str = ""
    ) -> WorkflowHandle:
        request = pb.RerunWorkflowRequest(
            workflow_id=workflow_id, step=step, only_this_step=not downstream, new_workflow_id=new_workflow_id
        )
        response = await self._call(self._stub.RerunWorkflow, request)
        return WorkflowHandle(await self.watch(response.workflow_id))

    # ---- schedules: the daemon's schedule calls --------------------------------------------------------

    async def add_schedule(self, schedule: Schedule) -> ScheduleInfo:
        request = pb.ScheduleRequest(schedule_json=json.dumps(schedule.check().to_dict(), ensure_ascii=False))
        return _convert.schedule_info_from_pb(await self._call(self._stub.CreateSchedule, request))

    async def update_schedule(self, schedule: Schedule) -> ScheduleInfo:
        request = pb.ScheduleRequest(schedule_json=json.dumps(schedule.check().to_dict(), ensure_ascii=False))
        return _convert.schedule_info_from_pb(await self._call(self._stub.UpdateSchedule, request))

    async def schedule(self, name: str) -> ScheduleInfo:
        found = await self._call(self._stub.GetSchedule, pb.ScheduleName(name=name))
        return _convert.schedule_info_from_pb(found)

    async def schedules(self) -> list[ScheduleInfo]:
        listed = await self._call(self._stub.ListSchedules, empty_pb2.Empty())
        return [_convert.schedule_info_from_pb(record) for record in listed.schedules]

    async def pause_schedule(self, name: str) -> ScheduleInfo:
        return _convert.schedule_info_from_pb(await self._call(self._stub.PauseSchedule, pb.ScheduleName(name=name)))

    async def resume_schedule(self, name: str, *, run_now: bool = False) -> ScheduleInfo:
        request = pb.ResumeScheduleRequest(name=name, run_now=run_now)
        return _convert.schedule_info_from_pb(await self._call(self._stub.ResumeSchedule, request))

    async def remove_schedule(self, name: str) -> bool:
        return bool((await self._call(self._stub.DeleteSchedule, pb.ScheduleName(name=name))).deleted)

    async def trigger_schedule(self, name: str) -> AsyncTaskHandle:
        response = await self._call(self._stub.TriggerSchedule, pb.ScheduleName(name=name))
        return await self.watch(response.task_id)

    async def dead_letters(self) -> list[DeadLetter]:
        """The daemon's dead letters."""
        letters = await self._call(self._stub.ListDeadLetters, empty_pb2.Empty())
        return [_convert.dead_letter_from_pb(entry) for entry in letters.entries]

    async def requeue_dead_letter(self, task_id: str) -> AsyncTaskHandle:
        """Submit a dead-lettered task again (a new task id) and follow it.

        Raises:
            TaskNotFoundError: no dead letter has this id.
        """
        response = await self._call(self._stub.RequeueDeadLetter, pb.DeadLetterRequest(task_id=task_id))
        handle = await self.watch(response.task_id)
        return handle

    async def purge_dead_letters(self, task_ids: Iterable[str] | None = None) -> int:
        """Drop dead letters (all, or those given); returns how many were dropped."""
        request = pb.PurgeDeadLettersRequest(task_ids=list(task_ids or ()))
        return int((await self._call(self._stub.PurgeDeadLetters, request)).purged)

    async def _call(self, method: Any, request: Any) -> Any:
        """One unary call to the daemon; its failure becomes the error the daemon raised (or unavailable)."""
        try:
            return await method(request, timeout=self._timeout)
        except aio.AioRpcError as error:
            raise _rpc.error_from(error, self._unavailable) from error

    def _unavailable(self, detail: str) -> WorkerAbstractionError:
        return OrchestratorUnavailableError(f"orchestrator {self.address}: {detail}" + explain(detail, self.tls))

    def _handle(self, state: TaskState) -> AsyncTaskHandle:
        return AsyncTaskHandle(state, _RemoteOwner(self, state.task_id))

    async def _open_session(self) -> RemoteSession | None:
        """The session stream (opened on first use, again after a break); None: use the unary calls."""
        if self._unary_only:
            return None
        if self._session is not None and self._session.is_open:
            return self._session
        async with self._opening:
            if self._session is None or not self._session.is_open:
                session = RemoteSession(self._stub, self._unavailable, self._followers.resume)
                if not await session.open():
                    # Unreachable: the unary call that follows says so. An older daemon: unary from now on.
                    self._unary_only = session.unsupported
                    return None
                self._session = session
        return self._session

    def _follow(self, state: TaskState) -> AsyncTaskHandle:
        self._followers.follow(state)
        return self._handle(state)


class _RemoteOwner:
    def __init__(self, remote: RemoteOrchestrator, task_id: str) -> None:
        self._remote, self._task_id = remote, task_id

    async def cancel(self, reason: str) -> bool:
        return await self._remote.cancel(self._task_id, reason)

    async def provide_input(self, value_json: str, *, request_id: str = "", answered_by: str = "") -> InputAnswer:
        return await self._remote._answer(self._task_id, value_json, request_id=request_id, answered_by=answered_by)
