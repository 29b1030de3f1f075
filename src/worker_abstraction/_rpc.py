"""gRPC plumbing shared by every part: servers, channels, and the status-code boundary."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from grpc import aio

from worker_abstraction.errors import (
    BindError,
    InvalidWorkerInfoError,
    TaskNotFoundError,
    WorkerAbstractionError,
    WorkerNotFoundError,
)

# Keepalive lets both ends notice a dead peer on an idle long-lived stream (watch, status streams).
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect quickly after a peer restarts instead of waiting out gRPC's default backoff (up to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.so_reuseport", 0),
]

# End of a stream read with call.read(); grpc-stubs does not declare it.
EOF: object = getattr(aio, "EOF")  # noqa: B009

# Codes meaning "the peer could not be reached / did not answer", as opposed to a deliberate refusal.
TRANSPORT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def channel(address: str) -> aio.Channel:
    return aio.insecure_channel(address, options=CHANNEL_OPTIONS)


def new_server() -> aio.Server:
    return aio.server(options=SERVER_OPTIONS)


def bind(server: aio.Server, host: str, port: int) -> int:
    """Listen on host:port (port 0 picks a free one) and return the real port."""
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as error:  # grpcio >= 1.5x raises instead of returning 0
        raise BindError(f"cannot listen on {host}:{port}: address in use or not local") from error
    if bound == 0:
        raise BindError(f"cannot listen on {host}:{port} (address in use or not local)")
    return bound


def is_transport_error(error: grpc.RpcError) -> bool:
    return isinstance(error, aio.AioRpcError) and error.code() in TRANSPORT_CODES


def code_of(error: BaseException) -> grpc.StatusCode | None:
    return error.code() if isinstance(error, aio.AioRpcError) else None


async def abort(context: aio.ServicerContext[Any, Any], error: WorkerAbstractionError) -> NoReturn:
    """The server-side boundary: turn one of our errors into the matching status code."""
    await context.abort(_status_of(error), str(error))
    raise AssertionError("unreachable: context.abort raises")


def _status_of(error: WorkerAbstractionError) -> grpc.StatusCode:
    if isinstance(error, InvalidWorkerInfoError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, (WorkerNotFoundError, TaskNotFoundError)):
        return grpc.StatusCode.NOT_FOUND
    return grpc.StatusCode.INTERNAL
