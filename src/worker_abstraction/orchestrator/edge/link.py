"""The orchestrator's connection to workers: the task channel when offered, the seed's RPCs otherwise.

This is the edge towards workers: tasks leave as `pb.Task`, updates come back as `TaskUpdate`s and are
handed to an `AttemptSink`, one per attempt, which decides what they mean. Every answer a worker can give
to a dispatch, a cancel or a probe becomes a small domain value (`dispatch.py`), never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import grpc
from google.protobuf import empty_pb2
from grpc import aio

from worker_abstraction import _convert, _rpc
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.errors import InvalidAnswerError, TaskNotWaitingError
from worker_abstraction.exchanges import ANSWERS
from worker_abstraction.orchestrator.core.clock import Clock, LoopClock
from worker_abstraction.orchestrator.edge.channel import TaskChannel
from worker_abstraction.orchestrator.edge.dispatch import Answer, AttemptSink, CancelAnswer, DispatchAnswer, answer_of
from worker_abstraction.orchestrator.edge.follow import Reach, follow
from worker_abstraction.types import TaskSpec

logger = logging.getLogger(__name__)

DISPATCH_TIMEOUT_SECONDS = 10.0
PROBE_TIMEOUT_SECONDS = 1.0
_CANCEL_TIMEOUT_SECONDS = 2.0


class WorkerLink:
    """One worker's channel, stub and task channel, shared by every task sent to it."""

    def __init__(
        self,
        address: str,
        *,
        fast_path: bool = True,
        channel_factory: Callable[[str], aio.Channel] = _rpc.worker_channel,
        clock: Clock | None = None,
    ) -> None:
        self.address = address
        self._channel = channel_factory(address)
        self._stub = pb_grpc.WorkerServiceStub(self._channel)
        self._clock = clock or LoopClock()
        self._fast_path = fast_path
        self.task_channel: TaskChannel | None = None  # open while the fast path is in use
        self._opening = asyncio.Lock()
        self._followers: dict[AttemptSink, asyncio.Task[None]] = {}
        self._dispatching: set[asyncio.Task[DispatchAnswer]] = set()  # dispatches that wait for a channel or an RPC

    def dispatch(
        self,
        spec: TaskSpec,
        *,
        attempt: int,
        worker_id: str,
        sink: AttemptSink,
        trace_context: tuple[tuple[str, str], ...] | None = None,
        answers: str | None = None,
        session_moved: bool = False,
    ) -> asyncio.Future[DispatchAnswer]:
        """Hand one attempt of a task to the worker: the future is its answer, and its updates then flow to
        `sink` until it ends. On the open task channel that costs no task of its own (most dispatches); a
        channel to open, or the seed's ExecuteTask, is awaited by a task of the link's.

        `trace_context` is what the worker's handler continues (default: the submission's); `answers` the
        answers its questions were given in earlier attempts (`exchanges.ANSWERS`), if any.
        """
        task = _convert.task_to_pb(spec, attempt=attempt, worker_id=worker_id, trace_context=trace_context)
        if answers:
            task.metadata[ANSWERS] = answers
        if session_moved:
            task.session_moved = True
        channel = self.task_channel
        if self._fast_path and channel is not None and channel.is_open:
            return channel.submit_soon(task, sink)
        dispatching = asyncio.get_running_loop().create_task(
            self._dispatch(task, sink), name=f"dispatch-{spec.task_id}"
        )
        self._dispatching.add(dispatching)
        dispatching.add_done_callback(self._dispatching.discard)
        return dispatching

    @property
    def idle(self) -> bool:
        """Nothing is on its way to the worker or followed there (the link may be closed)."""
        channel = self.task_channel
        return not self._dispatching and not self._followers and (channel is None or not channel.routed)

    async def _dispatch(self, task: pb.Task, sink: AttemptSink) -> DispatchAnswer:
        channel = await self._usable_channel()
        if channel is not None:
            return await channel.submit(task, sink)
        try:
            response: pb.ExecuteTaskResponse = await self._stub.ExecuteTask(
                pb.ExecuteTaskRequest(task=task), timeout=DISPATCH_TIMEOUT_SECONDS
            )
        except aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:  # our worker's "full" on the seed's RPC
                return DispatchAnswer(Answer.BUSY, error.details() or "")
            answer = Answer.UNREACHABLE if _rpc.is_transport_error(error) else Answer.BROKEN
            return DispatchAnswer(answer, f"{error.code().name}: {error.details()}")
        if response.accepted:
            self.follow(sink)
            return DispatchAnswer(Answer.ACCEPTED)
        return answer_of(response)

    def follow(self, sink: AttemptSink) -> None:
        """Deliver the attempt's updates to `sink` from StreamTaskStatus, resuming after what it saw."""
        follower = asyncio.get_running_loop().create_task(
            follow(self._stub, sink, self.reach, self._clock), name=f"follow-{sink.task_id}"
        )
        self._followers[sink] = follower
        follower.add_done_callback(lambda done: self._followed(sink, done))

    def _followed(self, sink: AttemptSink, follower: asyncio.Task[None]) -> None:
        if self._followers.get(sink) is follower:
            del self._followers[sink]

    def forget(self, sink: AttemptSink) -> None:
        """Nobody wants the attempt's updates any more: stop following it."""
        if self.task_channel is not None:
            self.task_channel.forget(sink)
        follower = self._followers.pop(sink, None)
        if follower is not None and follower is not asyncio.current_task():
            follower.cancel()

    async def cancel(self, task_id: str, reason: str) -> CancelAnswer:
        """Ask the worker to cancel a task."""
        try:
            response = await self._stub.CancelTask(
                pb.CancelTaskRequest(task_id=task_id, reason=reason), timeout=_CANCEL_TIMEOUT_SECONDS
            )
        except aio.AioRpcError as error:
            code = error.code()
            if code is grpc.StatusCode.NOT_FOUND:
                return CancelAnswer.UNKNOWN
            if code is grpc.StatusCode.UNIMPLEMENTED:
                return CancelAnswer.UNSUPPORTED
            return CancelAnswer.UNREACHABLE
        return CancelAnswer.CANCELING if response.canceled else CancelAnswer.FINISHED

    async def provide_input(
        self, task_id: str, request_id: str, value_json: str, answered_by: str, attempt: int
    ) -> None:
        """Pass an answer on to the worker whose handler waits for it.

        Raises:
            InvalidAnswerError: the worker's own check of the value refused it.
            TaskNotWaitingError: the worker waits for no such answer, or could not be reached.
        """
        request = pb.ProvideInputRequest(
            task_id=task_id, request_id=request_id, value_json=value_json, answered_by=answered_by, attempt=attempt
        )
        try:
            await self._stub.ProvideInput(request, timeout=_CANCEL_TIMEOUT_SECONDS)
        except aio.AioRpcError as error:
            detail = f"{error.code().name}: {(error.details() or '')[:300]}"
            if error.code() is grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidAnswerError([detail]) from None
            raise TaskNotWaitingError(task_id, f"could not be given the answer by its worker ({detail})") from None

    async def reach(self) -> tuple[Reach, str]:
        """Whether a worker answers at this address (`GetWorkerInfo`, which every worker serves)."""
        started = self._clock.now()
        try:
            await self._stub.GetWorkerInfo(empty_pb2.Empty(), timeout=PROBE_TIMEOUT_SECONDS)
        except aio.AioRpcError as error:
            detail = f"{error.code().name}: {error.details()}"
            if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                return Reach.SILENT, detail
            if error.code() is grpc.StatusCode.UNAVAILABLE:
                # Turned away at once (connection refused or reset): nothing listens there any more. A
                # network that swallows packets instead makes the probe wait: that is silence.
                quick = self._clock.now() - started < PROBE_TIMEOUT_SECONDS / 2
                return (Reach.REFUSED if quick else Reach.SILENT), detail
            if error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                return Reach.DENIED, detail
            return Reach.NOT_A_WORKER, detail
        return Reach.ANSWERED, ""

    async def _usable_channel(self) -> TaskChannel | None:
        if not self._fast_path:
            return None
        if self.task_channel is not None and self.task_channel.is_open:
            return self.task_channel
        async with self._opening:
            if self.task_channel is None or not self.task_channel.is_open:
                channel = TaskChannel(self._stub, self.address, resume=self.follow)
                if not await channel.open():
                    if channel.unsupported:
                        logger.info("worker at %s has no task channel; using ExecuteTask", self.address)
                        self._fast_path = False
                    return None
                self.task_channel = channel
        return self.task_channel

    async def aclose(self) -> None:
        if self.task_channel is not None:
            await self.task_channel.aclose()
        followers = [*self._followers.values(), *self._dispatching]
        for follower in followers:
            follower.cancel()
        for follower in followers:
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        await self._channel.close(None)


class WorkerLinks:
    """The orchestrator's links, one per worker address. Inject one to watch or break them in tests.

    Args:
        fast_path: use a worker's task channel when it offers one (False: always the seed's RPCs).
        channel_factory: makes the gRPC channel for an address.
        clock: time for reconnection windows.
    """

    def __init__(
        self,
        *,
        fast_path: bool = True,
        channel_factory: Callable[[str], aio.Channel] = _rpc.worker_channel,
        clock: Clock | None = None,
    ) -> None:
        self.fast_path = fast_path
        self._channel_factory = channel_factory
        self._clock = clock or LoopClock()
        self._links: dict[str, WorkerLink] = {}

    def get(self, address: str) -> WorkerLink:
        """The link to the worker at `address` (made on first use)."""
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = WorkerLink(
                address, fast_path=self.fast_path, channel_factory=self._channel_factory, clock=self._clock
            )
        return link

    def known(self, address: str) -> WorkerLink | None:
        """The link to `address` if one was made."""
        return self._links.get(address)

    async def discard_idle(self, address: str) -> None:
        """Close the link to `address` if nothing uses it (a worker that left or does not answer); a later
        task or probe to the address opens a new one. Keeps thousands of dead registrations from holding
        thousands of channels."""
        link = self._links.get(address)
        if link is not None and link.idle:
            del self._links[address]
            await link.aclose()

    async def aclose(self) -> None:
        links, self._links = list(self._links.values()), {}
        for link in links:
            await link.aclose()
