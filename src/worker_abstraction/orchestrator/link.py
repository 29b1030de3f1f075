"""The orchestrator's connection to one worker: the task channel when offered, the seed's RPCs otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc import aio

from worker_abstraction import _convert, _rpc
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.orchestrator.follow import follow
from worker_abstraction.orchestrator.handle import AsyncTaskHandle

logger = logging.getLogger(__name__)

_DISPATCH_TIMEOUT_SECONDS = 10.0


class WorkerUnreachableError(Exception):
    """The task could not be handed over (transport failure); it may go to another worker."""


class WorkerLink:
    """One worker's channel, stub and task channel, shared by every task sent to it."""

    def __init__(self, address: str, *, fast_path: bool = True) -> None:
        self.address = address
        self._channel = _rpc.channel(address)
        self.stub = pb_grpc.WorkerServiceStub(self._channel)
        self._fast_path = fast_path
        self._task_channel: TaskChannel | None = None
        self._opening: asyncio.Lock = asyncio.Lock()

    async def dispatch(self, task: pb.Task, handle: AsyncTaskHandle) -> pb.ExecuteTaskResponse:
        """Hand a task to the worker; updates then flow to `handle` until it is done.

        Raises:
            WorkerUnreachableError: the worker could not be reached.
        """
        channel = await self._usable_channel()
        if channel is not None:
            return await channel.submit(task, handle)
        try:
            response: pb.ExecuteTaskResponse = await self.stub.ExecuteTask(
                pb.ExecuteTaskRequest(task=task), timeout=_DISPATCH_TIMEOUT_SECONDS
            )
        except aio.AioRpcError as error:
            if _rpc.is_transport_error(error):
                raise WorkerUnreachableError(f"{error.code().name}: {error.details()}") from error
            raise
        if response.accepted:
            follow(handle, self.stub)
        return response

    async def _usable_channel(self) -> TaskChannel | None:
        if not self._fast_path:
            return None
        if self._task_channel is not None and self._task_channel.is_open:
            return self._task_channel
        async with self._opening:
            if self._task_channel is None or not self._task_channel.is_open:
                channel = TaskChannel(self.stub, self.address)
                if not await channel.open():
                    if channel.unsupported:
                        logger.info("worker at %s has no task channel; using ExecuteTask", self.address)
                        self._fast_path = False
                    return None
                self._task_channel = channel
        return self._task_channel

    async def aclose(self) -> None:
        if self._task_channel is not None:
            await self._task_channel.aclose()
        await self._channel.close(None)


class TaskChannel:
    """The orchestrator's end of one OpenTaskChannel stream.

    Tasks submitted between two writes go out in one message; acks and updates are routed to handles
    by task id. If the stream breaks, tasks still running are resumed over StreamTaskStatus from the
    last update each handle saw, so nothing already accepted is lost.
    """

    def __init__(self, stub: pb_grpc.WorkerServiceStub, address: str) -> None:
        self._stub = stub
        self.address = address
        self._call: aio.StreamStreamCall[pb.TaskChannelRequest, pb.TaskChannelResponse] | None = None
        self._outbox: list[pb.Task] = []
        self._wake = asyncio.Event()
        self._acks: dict[str, asyncio.Future[pb.ExecuteTaskResponse]] = {}
        self._routes: dict[str, AsyncTaskHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.is_open = False
        self.unsupported = False

    async def open(self) -> bool:
        """Open the stream and wait for the worker's ready message; False if it cannot be used."""
        self._call = self._stub.OpenTaskChannel()
        try:
            async with asyncio.timeout(_DISPATCH_TIMEOUT_SECONDS):
                ready = await self._call.read()
        except (aio.AioRpcError, TimeoutError) as error:
            code = _rpc.code_of(error)
            self.unsupported = code is grpc.StatusCode.UNIMPLEMENTED
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

    async def submit(self, task: pb.Task, handle: AsyncTaskHandle) -> pb.ExecuteTaskResponse:
        ack: asyncio.Future[pb.ExecuteTaskResponse] = asyncio.get_running_loop().create_future()
        self._acks[task.task_id] = ack
        self._routes[task.task_id] = handle
        self._outbox.append(task)
        self._wake.set()
        return await ack

    async def aclose(self) -> None:
        self.is_open = False
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
                if batch:
                    await self._call.write(pb.TaskChannelRequest(tasks=batch))
        except (aio.AioRpcError, aio.UsageError) as error:
            logger.debug("task channel to %s: write failed: %s", self.address, error)
            self._broken()

    async def _read_loop(self) -> None:
        assert self._call is not None
        try:
            while isinstance(message := await self._call.read(), pb.TaskChannelResponse):
                for ack in message.acks:
                    waiter = self._acks.pop(ack.task_id, None)
                    if not ack.accepted:
                        self._routes.pop(ack.task_id, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(ack)
                for update in message.updates:
                    handle = self._routes.get(update.task_id)
                    if handle is not None:
                        handle.deliver(_convert.update_from_pb(update))
                        if handle.done() or update.status in _TERMINAL:
                            del self._routes[update.task_id]
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
        # Tasks not acknowledged yet may or may not have arrived; the caller may send them elsewhere.
        unreachable = WorkerUnreachableError(f"task channel to {self.address} broke")
        for task_id, waiter in self._acks.items():
            if not waiter.done():
                waiter.set_exception(unreachable)
            self._routes.pop(task_id, None)
        self._acks.clear()
        # Accepted tasks keep running on the worker: resume each from the last update its handle saw.
        for handle in self._routes.values():
            if not handle.done():
                follow(handle, self._stub)
        self._routes.clear()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()


_TERMINAL = frozenset({pb.TASK_STATUS_COMPLETED, pb.TASK_STATUS_FAILED, pb.TASK_STATUS_CANCELED})
