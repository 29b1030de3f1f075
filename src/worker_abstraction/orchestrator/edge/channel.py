"""The orchestrator's end of one OpenTaskChannel stream (the fast path).

Tasks submitted between two writes go out in one message; acks and updates are routed to each attempt's
sink by task id. If the stream breaks, attempts still running are resumed over StreamTaskStatus from the
last update each sink saw, so nothing already accepted is lost (or, if the worker is gone, the follower
finds that out at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import grpc
from grpc import aio

from worker_abstraction import _convert, _rpc, limits
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.orchestrator.edge.dispatch import Answer, AttemptSink, DispatchAnswer, answer_of

logger = logging.getLogger(__name__)

_OPEN_TIMEOUT_SECONDS = 10.0
_ACK_TIMEOUT_SECONDS = 10.0


class TaskChannel:
    """One open OpenTaskChannel stream to a worker."""

    def __init__(
        self, stub: pb_grpc.WorkerServiceStub, address: str, *, resume: Callable[[AttemptSink], object]
    ) -> None:
        self._stub = stub
        self.address = address
        self._resume = resume
        self._call: aio.StreamStreamCall[pb.TaskChannelRequest, pb.TaskChannelResponse] | None = None
        self._outbox: list[pb.Task] = []
        self._wake = asyncio.Event()
        self._acks: dict[str, asyncio.Future[DispatchAnswer]] = {}  # task id -> the worker's answer, to come
        self._sent_at: dict[str, float] = {}  # task id -> when it was sent, oldest first, until acked
        self._watchdog: asyncio.TimerHandle | None = None
        self._routes: dict[str, AttemptSink] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.is_open = False
        self.unsupported = False

    async def open(self) -> bool:
        """Open the stream and wait for the worker's ready message; False if it cannot be used."""
        self._call = self._stub.OpenTaskChannel()
        try:
            async with asyncio.timeout(_OPEN_TIMEOUT_SECONDS):
                ready = await self._call.read()
        except (aio.AioRpcError, TimeoutError) as error:
            self.unsupported = _rpc.code_of(error) is grpc.StatusCode.UNIMPLEMENTED
            self._call.cancel()
            return False
        if ready is _rpc.EOF:
            self.unsupported = True
            return False
        self.is_open = True
        self._tasks = [
            asyncio.create_task(self._write_loop(), name=f"channel-writer-{self.address}"),
            asyncio.create_task(self._read_loop(), name=f"channel-reader-{self.address}"),
        ]
        return True

    async def submit(self, task: pb.Task, sink: AttemptSink) -> DispatchAnswer:
        """Send a task and wait for the worker's ack (updates then flow to `sink`)."""
        return await self.submit_soon(task, sink)

    def submit_soon(self, task: pb.Task, sink: AttemptSink) -> asyncio.Future[DispatchAnswer]:
        """Send a task; the future is the worker's answer (UNREACHABLE if the channel breaks first or the
        worker never answers). Updates then flow to `sink`."""
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[DispatchAnswer] = loop.create_future()
        if not self.is_open:
            answered.set_result(DispatchAnswer(Answer.UNREACHABLE, f"task channel to {self.address} is closed"))
            return answered
        self._acks[task.task_id] = answered
        self._sent_at[task.task_id] = loop.time()
        self._routes[task.task_id] = sink
        self._outbox.append(task)
        self._wake.set()
        if self._watchdog is None:
            self._watchdog = loop.call_later(_ACK_TIMEOUT_SECONDS / 4, self._expire_acks)
        return answered

    def _expire_acks(self) -> None:
        # One timer for every task in flight (not one each): oldest first, so the scan stops at a young one.
        self._watchdog = None
        now = asyncio.get_running_loop().time()
        while self._sent_at:
            task_id, sent = next(iter(self._sent_at.items()))
            if now - sent < _ACK_TIMEOUT_SECONDS:
                break
            del self._sent_at[task_id]
            waiter = self._acks.pop(task_id, None)
            if waiter is not None and not waiter.done():
                self._routes.pop(task_id, None)
                message = f"no answer from {self.address} within {_ACK_TIMEOUT_SECONDS:g}s"
                waiter.set_result(DispatchAnswer(Answer.UNREACHABLE, message))
        if self._sent_at and self.is_open:
            self._watchdog = asyncio.get_running_loop().call_later(_ACK_TIMEOUT_SECONDS / 4, self._expire_acks)

    @property
    def routed(self) -> bool:
        """Whether any attempt's updates are still expected on this stream."""
        return bool(self._routes or self._acks)

    def forget(self, sink: AttemptSink) -> None:
        """Stop routing updates to `sink` (its attempt is over)."""
        if self._routes.get(sink.task_id) is sink:
            del self._routes[sink.task_id]

    def abort(self) -> None:
        """Break the stream now (what a dying connection does); running attempts are followed instead."""
        if self._call is not None:
            self._call.cancel()

    async def aclose(self) -> None:
        self.is_open = False
        if self._watchdog is not None:
            self._watchdog.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._call is not None:
            self._call.cancel()

    async def _write_loop(self) -> None:
        assert self._call is not None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch, self._outbox = self._outbox, []
                for run in _rpc.split_by_size(batch, limits.payload_limit()) if batch else ():
                    await self._call.write(pb.TaskChannelRequest(tasks=run))
        except (aio.AioRpcError, aio.UsageError, asyncio.InvalidStateError) as error:
            logger.debug("task channel to %s: write failed: %s", self.address, error)
            self._broken()

    async def _read_loop(self) -> None:
        assert self._call is not None
        try:
            while isinstance(message := await self._call.read(), pb.TaskChannelResponse):
                for ack in message.acks:
                    self._sent_at.pop(ack.task_id, None)
                    waiter = self._acks.pop(ack.task_id, None)
                    if not ack.accepted:
                        self._routes.pop(ack.task_id, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(answer_of(ack))
                for update in message.updates:
                    sink = self._routes.get(update.task_id)
                    if sink is None:
                        continue
                    sink.deliver(_convert.update_from_pb(update))
                    if not sink.active():  # (a zombie attempt's terminal update does not end the current one)
                        self._routes.pop(update.task_id, None)
        except aio.AioRpcError as error:
            logger.debug("task channel to %s broke: %s", self.address, error.code().name)
        finally:
            self._broken()

    def _broken(self) -> None:
        if not self.is_open:
            return
        self.is_open = False
        if self._call is not None:
            self._call.cancel()
        # Tasks not acknowledged yet may or may not have arrived; the caller decides where they go next.
        for task_id, waiter in self._acks.items():
            if not waiter.done():
                waiter.set_result(DispatchAnswer(Answer.UNREACHABLE, f"task channel to {self.address} broke"))
            self._routes.pop(task_id, None)
        self._acks.clear()
        self._sent_at.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
        # Accepted tasks keep running on the worker: follow each from the last update its sink saw.
        for sink in self._routes.values():
            if sink.active():
                self._resume(sink)
        self._routes.clear()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
