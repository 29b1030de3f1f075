"""The A2A request handler over our orchestrator: A2A calls become calls on our tasks, under the same ids.

It implements the SDK's `RequestHandler` itself rather than its `DefaultRequestHandler` + `AgentExecutor` +
`TaskStore`: those keep a second copy of every task (the SDK's `Task` objects) in a store of their own, and
ours would then be two truths. Here every answer is read from the orchestrator's records and handles, so an
A2A task lives in the daemon's store, survives its restarts, and is the same task `wa task`, the dashboard
and `RemoteOrchestrator` see.

    SendMessage / SendStreamingMessage   a new message: submit its capability (see `a2a_messages`); a message
                                         on a task waiting for input: answer its question
    GetTask, ListTasks                   the task's record (ListTasks pages by offset; newest first)
    CancelTask                           cancel it; the canceled task (or where it stands after a while)
    SubscribeToTask                      the task, then its updates as they come (`a2a_tasks.events_of`)
    push notification configs            not supported (PushNotificationNotSupportedError)

A stream ends when the task ends or asks for input (A2A's interrupted state); the answering message
streams the rest. A blocking send returns when the task ends or waits (input or approval), or at once with
`configuration.return_immediately`.

Callers: with credentials on, a client sees and touches only the tasks it submitted (another's is
"not found"), an operator every task, as on our own RPCs (`orchestrator.daemon.callers`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.request_handlers import RequestHandler, validate_request_params
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    PushNotificationNotSupportedError,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskNotCancelableError,
    TaskPushNotificationConfig,
    UnsupportedOperationError,
)
from a2a.types import TaskNotFoundError as A2ATaskNotFoundError
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE
from a2a.utils.task import apply_history_length, validate_history_length, validate_page_size

from worker_abstraction.errors import (
    InvalidParametersError,
    NoWorkerError,
    PermissionDeniedError,
    QueueFullError,
    TaskNotFoundError,
    TaskNotWaitingError,
    WorkerAbstractionError,
)
from worker_abstraction.interop.a2a_access import Caller, caller_of
from worker_abstraction.interop.a2a_messages import answer_of, answered_request, call_of
from worker_abstraction.interop.a2a_tasks import SETTLED, STATUSES_OF, events_of, idempotency_key, task_of
from worker_abstraction.options import TaskOptions, scoped_key
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator
from worker_abstraction.types import ParameterSpec, TaskQuery, TaskRecord, TaskStatus, TaskUpdate

logger = logging.getLogger(__name__)

CANCEL_WAIT_SECONDS = 5.0  # how long CancelTask waits for the task to end before answering where it stands
CardOf = Callable[[ServerCallContext], Awaitable[AgentCard]]


class A2ARequestHandler(RequestHandler):
    """A2A's operations on the tasks of one orchestrator (of one of its workers, with `worker_id`).

    Args:
        orchestrator: the engine whose tasks these are.
        card_of: the full agent card for a call (GetExtendedAgentCard).
        worker_id: pin every task this handler submits to this worker, and list only its tasks.
    """

    def __init__(self, orchestrator: AsyncOrchestrator, card_of: CardOf, *, worker_id: str = "") -> None:
        self.orchestrator = orchestrator
        self.worker_id = worker_id
        self._card_of = card_of

    # ---- reading -------------------------------------------------------------------------------------------

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        validate_history_length(params)
        async with _translated():
            record = await self._visible(params.id, caller_of(context))
            return apply_history_length(task_of(record, await self._updates(record.task_id)), params)

    @validate_request_params
    async def on_list_tasks(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        validate_history_length(params)
        size = params.page_size if params.HasField("page_size") else DEFAULT_LIST_TASKS_PAGE_SIZE
        validate_page_size(size)
        offset = _offset_of(params.page_token)
        caller = caller_of(context)
        query = TaskQuery(
            statuses=STATUSES_OF.get(params.status, ()) if params.status else (),
            limit=size,
            offset=offset,
            owner=caller.restricted_to,
            worker_id=self.worker_id,
            since=params.status_timestamp_after.ToDatetime() if params.HasField("status_timestamp_after") else None,
        )
        async with _translated():
            records, more = await self.orchestrator.engine.task_page(query)
        tasks = [apply_history_length(task_of(r), params) for r in records if caller.sees(r)]
        if params.context_id:
            tasks = [t for t in tasks if t.context_id == params.context_id]
        return ListTasksResponse(
            tasks=tasks,
            next_page_token=str(offset + size) if more else "",
            page_size=size,
            total_size=offset + len(records) + (1 if more else 0),
        )

    # ---- sending -------------------------------------------------------------------------------------------

    @validate_request_params
    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task | Message:
        validate_history_length(params.configuration)
        async with _translated():
            handle, after = await self._take(params.message, caller_of(context))
            if not params.configuration.return_immediately:
                await _settled(handle, after)
            record = await self.orchestrator.task(handle.task_id)
            return apply_history_length(task_of(record, handle.updates), params.configuration)

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        validate_history_length(params.configuration)
        async with _translated():
            handle, after = await self._take(params.message, caller_of(context))
            record = await self.orchestrator.task(handle.task_id)
        task = task_of(record, handle.updates[:after])
        yield apply_history_length(task, params.configuration)
        async for event in _follow(handle, after, task.context_id, stop_on_question=True):
            yield event

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        async with _translated():
            record = await self._visible(params.id, caller_of(context))
            handle = await self.orchestrator.watch(record.task_id)
        after = len(handle.updates)
        task = task_of(record, handle.updates[:after])
        yield task
        if record.status.is_terminal:
            return
        # A task waiting for input when subscribed to is followed until it ends or asks again.
        waiting = record.status is TaskStatus.INPUT_REQUIRED
        async for event in _follow(handle, after, task.context_id, stop_on_question=not waiting):
            yield event

    @validate_request_params
    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task | None:
        caller = caller_of(context)
        async with _translated():
            record = await self._visible(params.id, caller)
            if record.status.is_terminal:
                raise TaskNotCancelableError(message=f"task {record.task_id} is {record.status.name}")
            handle = await self.orchestrator.watch(record.task_id)
            await self.orchestrator.cancel(record.task_id, f"canceled through A2A by {caller.name or 'a caller'}")
            try:
                async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                    await handle.wait()
            except TimeoutError:
                pass  # (answered with where it stands: the worker has not stopped yet)
            return task_of(await self.orchestrator.task(record.task_id), handle.updates)

    async def _take(self, message: Message, caller: Caller) -> tuple[AsyncTaskHandle, int]:
        """A message taken in: a new task submitted, or the answer to a waiting task's question. Returns the
        task's handle and how many of its updates come before what the message started."""
        if message.task_id:
            return await self._answer(message, caller)
        call = call_of(message, self._parameters_of, sole=self._sole())
        caller.check_may_call(call.capability)
        context_id = message.context_id
        key = idempotency_key(context_id, message.message_id or uuid.uuid4().hex)
        options = TaskOptions(
            idempotency_key=scoped_key(caller.owner, key) if caller.owner else key,
            session_key=context_id,  # a conversation's tasks go to one worker while it lives (soft affinity)
            worker_id=self.worker_id,
        )
        engine = self.orchestrator.engine
        spec = dataclasses.replace(engine.spec(call.capability, call.params, options), owner=caller.owner)
        accepted = await engine.submit_spec(spec)
        logger.debug("A2A message submitted", extra={"task_id": accepted.handle.task_id})
        return accepted.handle, 0

    async def _answer(self, message: Message, caller: Caller) -> tuple[AsyncTaskHandle, int]:
        record = await self._visible(message.task_id, caller)
        if record.status.is_terminal:
            raise UnsupportedOperationError(message=f"task {record.task_id} is {record.status.name}: it takes no input")
        request = record.input_request
        if request is None:
            raise InvalidParamsError(message=f"task {record.task_id} waits for no input (it is {record.status.name})")
        handle = await self.orchestrator.watch(record.task_id)
        after = len(handle.updates)
        await self.orchestrator.provide_input(
            record.task_id,
            answer_of(message, request),
            request_id=answered_request(message) or request.request_id,
            answered_by=caller.owner,
        )
        return handle, after

    def _sole(self) -> str | None:
        """The one capability this agent (the team, or its one worker) offers now; None: several, or none."""
        workers = self.orchestrator.engine.directory.workers
        offering = (
            [workers[self.worker_id]] if self.worker_id in workers else [] if self.worker_id else workers.values()
        )
        names = {spec.name for worker in offering for spec in worker.capabilities}
        return next(iter(names)) if len(names) == 1 else None

    def _parameters_of(self, capability: str) -> tuple[ParameterSpec, ...] | None:
        for worker in self.orchestrator.engine.directory.workers.values():
            spec = worker.capability(capability)
            if spec is not None:
                return spec.parameters
        return None

    async def _visible(self, task_id: str, caller: Caller) -> TaskRecord:
        record = await self.orchestrator.task(task_id)
        if not caller.sees(record):
            raise TaskNotFoundError(task_id, "the orchestrator")
        return record

    async def _updates(self, task_id: str) -> list[TaskUpdate]:
        try:
            return list((await self.orchestrator.watch(task_id)).updates)
        except TaskNotFoundError:
            return []  # (a finished task no longer followed: its record has its outcome)

    # ---- cards and what is not supported -------------------------------------------------------------------

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        return await self._card_of(context)

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError


async def _settled(handle: AsyncTaskHandle, after: int) -> None:
    """Wait until an update after position `after` ends the task or makes it wait for someone."""
    position = 0
    async for update in handle:
        position += 1
        if position > after and update.status in SETTLED:
            return


async def _follow(
    handle: AsyncTaskHandle, after: int, context_id: str, *, stop_on_question: bool
) -> AsyncIterator[Event]:
    """The A2A events of the task's updates after position `after`, until it ends (or asks for input)."""
    position = 0
    async for update in handle:
        position += 1
        if position <= after:
            continue
        for event in events_of(update, context_id):
            yield event
        if update.is_terminal or (stop_on_question and update.status is TaskStatus.INPUT_REQUIRED):
            return


def _offset_of(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit() or len(token) > 9:
        raise InvalidParamsError(message=f"page_token {token[:32]!r} is not one this server gave")
    return int(token)


class _translated:
    """Our errors as A2A's, in one place (`async with _translated(): ...`)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if error is None or not isinstance(error, WorkerAbstractionError):
            return
        if isinstance(error, TaskNotFoundError):
            raise A2ATaskNotFoundError(message=str(error)) from error
        if isinstance(error, PermissionDeniedError):
            raise InvalidRequestError(message=str(error)) from error
        if isinstance(error, InvalidParametersError | NoWorkerError | TaskNotWaitingError):
            raise InvalidParamsError(message=str(error)) from error
        if isinstance(error, QueueFullError):
            raise InternalError(message=str(error)) from error
        raise InternalError(message=f"{type(error).__name__}: {error}") from error
