"""RegistryService over gRPC: decode, call `Registry`, encode; errors become status codes here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import empty_pb2
from grpc import aio

from worker_abstraction import _convert, _memory, _rpc, auth
from worker_abstraction._convert import bounds
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.codec import short
from worker_abstraction.errors import PermissionDeniedError, WorkerAbstractionError
from worker_abstraction.options import MAX_ID_LENGTH
from worker_abstraction.registry.events import WorkerEvent
from worker_abstraction.registry.service import Registry
from worker_abstraction.registry.validation import MAX_REGISTRATION_BYTES

logger = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]


class RegistryServicer(pb_grpc.RegistryServiceServicer):  # type: ignore[misc]  # generated, untyped
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def RegisterWorker(self, request: pb.RegisterWorkerRequest, context: Context) -> pb.RegisterWorkerResponse:
        if not request.HasField("worker_info"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "worker_info is missing")
        size = request.worker_info.ByteSize()
        _memory.handled(size)
        if size > MAX_REGISTRATION_BYTES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"worker_info takes {size:,} bytes; a registration may take at most {MAX_REGISTRATION_BYTES:,} "
                "(shorten descriptions and schemas, or offer fewer capabilities)",
            )
        try:
            bounds.check(request)
            info = _convert.worker_from_pb(request.worker_info)
            principal = auth.current_principal()
            refused = [c.name for c in info.capabilities if not principal.may_use(c.name)]
            if refused:
                raise PermissionDeniedError(
                    f"{short(principal.name)} may not offer capability {short(refused[0])} (its token allows "
                    f"{', '.join(principal.capabilities)})"
                )
            info = await self._registry.register(info, owner=_owner())
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
        if await self._registry.heartbeat(request.worker_id, request.current_load, report, owner=_owner()):
            return _OK
        # success=false is how a seed worker learns it must register again; must_register says it plainly.
        return pb.HeartbeatResponse(
            success=False,
            message=f"unknown worker_id {short(request.worker_id)}; register again",
            must_register=True,
        )

    async def GetAvailableWorkers(self, request: empty_pb2.Empty, context: Context) -> AsyncIterator[pb.WorkerInfo]:
        for info in await self._registry.live_workers():
            yield _convert.worker_to_pb(info)

    async def GetWorkerById(self, request: pb.GetWorkerByIdRequest, context: Context) -> pb.WorkerInfo:
        if not request.worker_id or len(request.worker_id) > MAX_ID_LENGTH:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _id_problem(request.worker_id))
        try:
            return _convert.worker_to_pb(await self._registry.get(request.worker_id))
        except WorkerAbstractionError as error:
            await _rpc.abort(context, error)

    async def DeregisterWorker(
        self, request: pb.DeregisterWorkerRequest, context: Context
    ) -> pb.DeregisterWorkerResponse:
        if not request.worker_id or len(request.worker_id) > MAX_ID_LENGTH:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _id_problem(request.worker_id))
        try:
            await self._registry.deregister(request.worker_id, owner=_owner())
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
                event = await self._registry.events.next(queue)
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


def _owner() -> str:
    """The principal a worker id belongs to ("" when callers are not identified, or for an operator)."""
    principal = auth.current_principal()
    return "" if principal is auth.ANYONE or auth.Role.OPERATOR in principal.roles else principal.name


def _id_problem(worker_id: str) -> str:
    if not worker_id:
        return "worker_id is empty"
    return f"worker_id may be at most {MAX_ID_LENGTH} characters, got {len(worker_id):,}: {short(worker_id)}"


def _heartbeat_problem(request: pb.HeartbeatRequest) -> str:
    problems = [] if request.worker_id else ["worker_id is empty"]
    if len(request.worker_id) > MAX_ID_LENGTH:
        problems.append(f"worker_id may be at most {MAX_ID_LENGTH} characters, got {len(request.worker_id):,}")
    utilization = request.load_report.utilization
    if len(utilization) > _MAX_METRICS:
        problems.append(f"load_report.utilization may hold at most {_MAX_METRICS} metrics, got {len(utilization)}")
    elif any(not key or len(key) > _MAX_METRIC_NAME for key in utilization):
        problems.append(f"load_report.utilization names must be 1..{_MAX_METRIC_NAME} characters")
    problems += bounds.problems(request)  # (the numbers: load, slots, utilisations)
    return "; ".join(problems)


_MAX_METRICS = 32
_MAX_METRIC_NAME = 64


def _event_to_pb(event: WorkerEvent) -> pb.WorkerEvent:
    message = pb.WorkerEvent(type=int(event.type), reason=event.reason)  # type: ignore[arg-type]
    if event.worker is not None:
        message.worker.CopyFrom(_convert.worker_to_pb(event.worker))
    return message
