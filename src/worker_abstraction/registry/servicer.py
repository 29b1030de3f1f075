"""RegistryService over gRPC: decode, call `Registry`, encode; errors become status codes here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import empty_pb2
from grpc import aio

from worker_abstraction import _convert, _rpc
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.errors import WorkerAbstractionError
from worker_abstraction.registry.events import WorkerEvent
from worker_abstraction.registry.service import Registry

logger = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]


class RegistryServicer(pb_grpc.RegistryServiceServicer):  # type: ignore[misc]  # generated, untyped
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def RegisterWorker(self, request: pb.RegisterWorkerRequest, context: Context) -> pb.RegisterWorkerResponse:
        if not request.HasField("worker_info"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "worker_info is missing")
        try:
            info = await self._registry.register(_convert.worker_from_pb(request.worker_info))
        except WorkerAbstractionError as error:
            await _rpc.abort(context, error)
        return pb.RegisterWorkerResponse(
            success=True,
            message=f"worker {info.worker_id} registered",
            worker_id=info.worker_id,
            heartbeat_interval_seconds=self._registry.heartbeat_interval_seconds,
        )

    async def WorkerHeartbeat(self, request: pb.HeartbeatRequest, context: Context) -> pb.HeartbeatResponse:
        problem = _heartbeat_problem(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        return await self._heartbeat(request)

    async def HeartbeatStream(
        self, request_iterator: AsyncIterator[pb.HeartbeatRequest], context: Context
    ) -> AsyncIterator[pb.HeartbeatResponse]:
        async for request in request_iterator:
            problem = _heartbeat_problem(request)
            if problem:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
            yield await self._heartbeat(request)

    async def _heartbeat(self, request: pb.HeartbeatRequest) -> pb.HeartbeatResponse:
        report = _convert.load_from_pb(request.load_report) if request.HasField("load_report") else None
        if await self._registry.heartbeat(request.worker_id, request.current_load, report):
            return _OK
        # success=false is how a seed worker learns it must register again; must_register says it plainly.
        return pb.HeartbeatResponse(
            success=False,
            message=f"unknown worker_id {request.worker_id!r}; register again",
            must_register=True,
        )

    async def GetAvailableWorkers(self, request: empty_pb2.Empty, context: Context) -> AsyncIterator[pb.WorkerInfo]:
        for info in await self._registry.live_workers():
            yield _convert.worker_to_pb(info)

    async def GetWorkerById(self, request: pb.GetWorkerByIdRequest, context: Context) -> pb.WorkerInfo:
        if not request.worker_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "worker_id is empty")
        try:
            return _convert.worker_to_pb(await self._registry.get(request.worker_id))
        except WorkerAbstractionError as error:
            await _rpc.abort(context, error)

    async def DeregisterWorker(
        self, request: pb.DeregisterWorkerRequest, context: Context
    ) -> pb.DeregisterWorkerResponse:
        if not request.worker_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "worker_id is empty")
        try:
            await self._registry.deregister(request.worker_id)
        except WorkerAbstractionError as error:
            await _rpc.abort(context, error)
        return pb.DeregisterWorkerResponse(success=True, message=f"worker {request.worker_id} deregistered")

    async def WatchWorkers(self, request: pb.WatchWorkersRequest, context: Context) -> AsyncIterator[pb.WorkerEvent]:
        # Subscribe before taking the snapshot: an event racing the snapshot is then delivered after it
        # (at worst repeating what the snapshot already shows), never lost between the two.
        queue = self._registry.events.subscribe()
        try:
            snapshot = await self._registry.live_workers()
            for info in snapshot:
                yield pb.WorkerEvent(type=pb.WORKER_EVENT_TYPE_JOINED, worker=_convert.worker_to_pb(info))
            yield pb.WorkerEvent(type=pb.WORKER_EVENT_TYPE_SYNCED)
            while True:
                event = await queue.get()
                if event is None and self._registry.events.closed:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "registry is shutting down")
                if event is None:
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED, "watcher fell behind; watch again to resync"
                    )
                yield _event_to_pb(event)
        finally:
            self._registry.events.unsubscribe(queue)


_OK = pb.HeartbeatResponse(success=True, message="ok")


def _heartbeat_problem(request: pb.HeartbeatRequest) -> str:
    if not request.worker_id:
        return "worker_id is empty"
    if request.current_load < 0:
        return f"current_load must be >= 0, got {request.current_load}"
    return ""


def _event_to_pb(event: WorkerEvent) -> pb.WorkerEvent:
    message = pb.WorkerEvent(type=int(event.type), reason=event.reason)  # type: ignore[arg-type]
    if event.worker is not None:
        message.worker.CopyFrom(_convert.worker_to_pb(event.worker))
    return message
