"""RegistryClient: the async client of RegistryService that workers and orchestrators use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from google.protobuf import empty_pb2
from grpc import aio

from worker_abstraction import _convert, _rpc
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.errors import (
    InvalidWorkerInfoError,
    RegistryRefusedError,
    RegistryUnavailableError,
    WorkerAbstractionError,
    WorkerNotFoundError,
)
from worker_abstraction.registry.events import WorkerEvent, WorkerEventType
from worker_abstraction.tls import TLSConfig, explain
from worker_abstraction.types import LoadReport, WorkerInfo


class WatchUnsupportedError(WorkerAbstractionError):
    """The registry implements only the seed's RPCs (WatchWorkers answered UNIMPLEMENTED)."""


@dataclass(frozen=True, slots=True)
class Registration:
    worker_id: str
    heartbeat_interval_seconds: float | None


class RegistryClient:
    """Talks to a registry. Transport failures raise `RegistryUnavailableError`.

    Args:
        address: host:port of the registry, or several comma-separated (replicas sharing one store): the
            first that answers is used, the next when it goes away (see `_targets.failover_target`).
        call_timeout_seconds: deadline of each unary call.
        tls: connect over TLS, trusting `tls.ca` (and presenting `tls.cert` for mTLS); default plaintext.
    """

    def __init__(self, address: str, *, call_timeout_seconds: float = 5.0, tls: TLSConfig | None = None) -> None:
        self.address = address
        self.tls = tls
        self._channel = _rpc.channel(address, tls)
        self._stub = pb_grpc.RegistryServiceStub(self._channel)
        self._timeout = call_timeout_seconds
        self._heartbeat_call: aio.StreamStreamCall[pb.HeartbeatRequest, pb.HeartbeatResponse] | None = None
        self._heartbeat_stream_offered = True  # until the registry answers UNIMPLEMENTED

    async def aclose(self) -> None:
        self._close_heartbeat_stream()
        await self._channel.close(None)

    async def register(self, info: WorkerInfo) -> Registration:
        """Register (or refresh) a worker.

        Raises:
            InvalidWorkerInfoError: the registry refused the registration.
            RegistryUnavailableError: the registry could not be reached.
        """
        try:
            response = await self._stub.RegisterWorker(
                pb.RegisterWorkerRequest(worker_info=_convert.worker_to_pb(info)), timeout=self._timeout
            )
        except aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidWorkerInfoError([error.details() or "invalid registration"]) from error
            raise self._unavailable("RegisterWorker", error) from error
        if not response.success:
            raise InvalidWorkerInfoError([response.message or "registry refused the registration"])
        return Registration(
            worker_id=response.worker_id or info.worker_id,
            heartbeat_interval_seconds=response.heartbeat_interval_seconds or None,
        )

    async def heartbeat(self, worker_id: str, load: int, report: LoadReport | None = None) -> bool:
        """Send a heartbeat; False means the registry does not know the worker and it must register.

        Heartbeats go as messages on one HeartbeatStream (far cheaper for the registry than a unary call
        each); a registry without it gets WorkerHeartbeat calls. Call it from one task at a time.
        """
        request = pb.HeartbeatRequest(worker_id=worker_id, current_load=load)
        if report is not None:
            request.load_report.CopyFrom(_convert.load_to_pb(report))
        if self._heartbeat_stream_offered:
            try:
                response = await self._beat_on_stream(request)
            except aio.AioRpcError as error:
                self._close_heartbeat_stream()
                if error.code() is not grpc.StatusCode.UNIMPLEMENTED:
                    raise self._unavailable("HeartbeatStream", error) from error
                self._heartbeat_stream_offered = False
            except (TimeoutError, asyncio.InvalidStateError, aio.UsageError) as error:
                # Unanswered, or written to a stream that already ended (grpc raises these, not AioRpcError):
                # a registry without HeartbeatStream may have ended it (UNIMPLEMENTED) before the write.
                ended_with = await self._ended_with()
                self._close_heartbeat_stream()
                if ended_with is not grpc.StatusCode.UNIMPLEMENTED:
                    raise RegistryUnavailableError(
                        f"registry {self.address}: heartbeat stream broke: {error!r}"
                    ) from error
                self._heartbeat_stream_offered = False
            else:
                return response.success and not response.must_register
        try:
            response = await self._stub.WorkerHeartbeat(request, timeout=self._timeout)
        except aio.AioRpcError as error:
            raise self._unavailable("WorkerHeartbeat", error) from error
        # A seed registry only says success=false; ours also sets must_register.
        return response.success and not response.must_register

    async def _beat_on_stream(self, request: pb.HeartbeatRequest) -> pb.HeartbeatResponse:
        if self._heartbeat_call is None:
            self._heartbeat_call = self._stub.HeartbeatStream()
        async with asyncio.timeout(self._timeout):
            await self._heartbeat_call.write(request)
            response = await self._heartbeat_call.read()
        if not isinstance(response, pb.HeartbeatResponse):  # the stream ended: open a new one next time
            self._close_heartbeat_stream()
            raise RegistryUnavailableError(f"registry {self.address} closed the heartbeat stream")
        return response

    async def _ended_with(self) -> grpc.StatusCode | None:
        """The status the heartbeat stream already ended with, if it has ended (None: it has not)."""
        call = self._heartbeat_call
        if call is None or not call.done():
            return None
        return await call.code()

    def _close_heartbeat_stream(self) -> None:
        if self._heartbeat_call is not None:
            self._heartbeat_call.cancel()
            self._heartbeat_call = None

    async def deregister(self, worker_id: str) -> bool:
        """Leave cleanly; False when the registry does not offer DeregisterWorker or forgot the worker."""
        try:
            await self._stub.DeregisterWorker(pb.DeregisterWorkerRequest(worker_id=worker_id), timeout=self._timeout)
        except aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND):
                return False
            raise self._unavailable("DeregisterWorker", error) from error
        return True

    async def list_workers(self) -> list[WorkerInfo]:
        """Every live worker (the seed's GetAvailableWorkers)."""
        try:
            call = self._stub.GetAvailableWorkers(empty_pb2.Empty(), timeout=self._timeout)
            return [_convert.worker_from_pb(message) async for message in call]
        except aio.AioRpcError as error:
            raise self._unavailable("GetAvailableWorkers", error) from error

    async def get_worker(self, worker_id: str) -> WorkerInfo:
        """One worker by id.

        Raises:
            WorkerNotFoundError: the registry does not know the id.
        """
        try:
            message = await self._stub.GetWorkerById(
                pb.GetWorkerByIdRequest(worker_id=worker_id), timeout=self._timeout
            )
        except aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                raise WorkerNotFoundError(worker_id) from error
            raise self._unavailable("GetWorkerById", error) from error
        return _convert.worker_from_pb(message)

    async def watch(self) -> AsyncIterator[WorkerEvent]:
        """Live workers as JOINED, one SYNCED, then changes as they happen; runs until the stream breaks.

        Raises:
            WatchUnsupportedError: the registry only has the seed's RPCs; poll `list_workers` instead.
            RegistryUnavailableError: the stream could not be opened or broke.
        """
        call = self._stub.WatchWorkers(pb.WatchWorkersRequest())
        try:
            async for message in call:
                yield WorkerEvent(
                    type=_event_type(message.type),
                    worker=_convert.worker_from_pb(message.worker) if message.HasField("worker") else None,
                    reason=message.reason,
                )
        except aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.UNIMPLEMENTED:
                raise WatchUnsupportedError("registry does not implement WatchWorkers") from error
            raise self._unavailable("WatchWorkers", error) from error
        finally:
            call.cancel()
        raise RegistryUnavailableError(f"registry {self.address} ended the WatchWorkers stream")

    def _unavailable(self, method: str, error: aio.AioRpcError) -> RegistryUnavailableError:
        if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return RegistryRefusedError(
                f"registry {self.address} refused {method}: {error.code().name}: {error.details()}"
            )
        return RegistryUnavailableError(
            f"registry {self.address}: {method} failed with {error.code().name}: {error.details()}"
            + explain(error.details() or "", self.tls)
        )


def _event_type(value: int) -> WorkerEventType:
    try:
        return WorkerEventType(value)
    except ValueError:
        return WorkerEventType.UNSPECIFIED
