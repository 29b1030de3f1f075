"""gRPC plumbing shared by every part: servers, channels, and the one error <-> status table.

The table serves both directions. A servicer raises one of our errors and `abort` turns it into its status
code, with the error's class and fields in the trailing metadata; `error_from` turns that back into the same
class with the same fields in the caller. A peer that sends no such metadata (a seed-built server) still
gets the most fitting class for its status code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from grpc import aio

from worker_abstraction import bearer, limits
from worker_abstraction._handlers import rewrap
from worker_abstraction._targets import failover_target
from worker_abstraction.errors import (
    BindError,
    InvalidParametersError,
    InvalidRequestError,
    InvalidWorkerInfoError,
    NoWorkerError,
    OrchestratorUnavailableError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitedError,
    RegistryUnavailableError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    StoreInUseError,
    StoreUnavailableError,
    TaskExistsError,
    TaskNotFoundError,
    TaskNotWaitingError,
    TaskRejectedError,
    WorkerAbstractionError,
    WorkerNotFoundError,
    error_class,
)
from worker_abstraction.tls import TLSConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")

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


def _size_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", limits.max_message_bytes()),
        ("grpc.max_receive_message_length", limits.max_message_bytes()),
    ]


def channel(address: str, tls: TLSConfig | None = None, *, worker: bool = False) -> aio.Channel:
    """A channel to `address`: plaintext, or TLS (and mTLS when `tls` has a cert) when `tls` is given.

    With `worker`, the address is a worker's as it registered it: calls then carry a credential signed for
    that worker alone rather than the process's token (see `bearer`), since any principal with the worker
    role may register an address and hear what is sent there.
    """
    target, extra = failover_target(address)
    options = CHANNEL_OPTIONS + _size_options() + extra
    interceptors = bearer.channel_interceptors(address if worker else None)
    if tls is None:
        return aio.insecure_channel(target, options=options, interceptors=interceptors)
    if tls.server_name is not None:
        options = [*options, ("grpc.ssl_target_name_override", tls.server_name)]
    return aio.secure_channel(target, tls.channel_credentials(), options=options, interceptors=interceptors)


def worker_channel(address: str, tls: TLSConfig | None = None) -> aio.Channel:
    """A channel to the worker registered at `address` (see `channel`)."""
    return channel(address, tls, worker=True)


def new_server(auth: aio.ServerInterceptor | None = None) -> aio.Server:  # type: ignore[type-arg]
    """A server whose handlers may raise our errors: the ErrorBoundary turns them into statuses. With
    `auth` (an `auth.Authenticator`), every call's credentials and role are checked before its handler."""
    interceptors: list[Any] = [ErrorBoundary()] + ([auth] if auth is not None else [])
    return aio.server(options=SERVER_OPTIONS + _size_options(), interceptors=interceptors)


def split_by_size(items: list[T], budget: int) -> list[list[T]]:
    """`items` in runs whose encoded sizes add up to at most `budget` (an oversized item runs alone), so a
    batch of several large messages never makes one message over the limit."""
    if len(items) <= 1:
        return [items]
    runs: list[list[T]] = [[]]
    used = 0
    for item in items:
        size = item.ByteSize()  # type: ignore[attr-defined]  # every protobuf message has it
        if runs[-1] and used + size > budget:
            runs.append([])
            used = 0
        runs[-1].append(item)
        used += size
    return runs


def bind(server: aio.Server, host: str, port: int, tls: TLSConfig | None = None, *, tokens: bool = False) -> int:
    """Listen on host:port (port 0 picks a free one), with TLS when `tls` is given, and return the real port.

    `tokens`: the server checks bearer tokens; without TLS it then warns that they cross in plaintext.

    Raises:
        BindError: the address cannot be listened on.
        InvalidTLSConfigError: `tls` has no cert and key to serve with.
    """
    target = f"{host}:{port}"
    try:
        bound = (
            server.add_insecure_port(target)
            if tls is None
            else server.add_secure_port(target, tls.server_credentials())
        )
    except RuntimeError as error:  # grpcio >= 1.5x raises instead of returning 0
        raise BindError(f"cannot listen on {host}:{port}: address in use or not local") from error
    if bound == 0:
        raise BindError(f"cannot listen on {host}:{port} (address in use or not local)")
    if tokens and tls is None:
        logger.warning(
            "%s:%d checks tokens over plaintext: anyone on the network path can read them and call as their "
            "principals; serve TLS (--tls-cert, --tls-key) and use --require-tls to refuse to start without it",
            host,
            bound,
        )
    return bound


def is_transport_error(error: grpc.RpcError) -> bool:
    return isinstance(error, aio.AioRpcError) and error.code() in TRANSPORT_CODES


def code_of(error: BaseException) -> grpc.StatusCode | None:
    return error.code() if isinstance(error, aio.AioRpcError) else None


# The one table: the first class an error is an instance of gives its status code.
STATUS: tuple[tuple[type[WorkerAbstractionError], grpc.StatusCode], ...] = (
    (InvalidParametersError, grpc.StatusCode.INVALID_ARGUMENT),  # InvalidTaskOptionsError too
    (InvalidWorkerInfoError, grpc.StatusCode.INVALID_ARGUMENT),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (WorkerNotFoundError, grpc.StatusCode.NOT_FOUND),
    (TaskNotFoundError, grpc.StatusCode.NOT_FOUND),
    (TaskExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (ScheduleNotFoundError, grpc.StatusCode.NOT_FOUND),
    (ScheduleExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (QueueFullError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (RateLimitedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NoWorkerError, grpc.StatusCode.FAILED_PRECONDITION),
    (TaskRejectedError, grpc.StatusCode.FAILED_PRECONDITION),
    (TaskNotWaitingError, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreInUseError, grpc.StatusCode.FAILED_PRECONDITION),
    (RegistryUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (OrchestratorUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (StoreUnavailableError, grpc.StatusCode.UNAVAILABLE),  # NatsUnavailableError: a brief outage is retried
)
# Trailing metadata naming the error's class and carrying its fields (JSON), so it is rebuilt exactly.
ERROR_KEY = "wa-error"
FIELDS_KEY = "wa-error-fields"
# Status details and metadata travel in HTTP/2 headers (8 KiB by default): long messages are cut.
_MAX_DETAILS = 900
_MAX_FIELDS = 1000


def status_of(error: WorkerAbstractionError) -> grpc.StatusCode:
    """The status code an error travels as."""
    return next((code for kind, code in STATUS if isinstance(error, kind)), grpc.StatusCode.INTERNAL)


def describe(error: WorkerAbstractionError) -> tuple[grpc.StatusCode, str, str, str]:
    """How an error travels: status code, details (cut to what headers carry), class name, fields as JSON
    ("" when they are too long to carry)."""
    details = str(error)
    if len(details) > _MAX_DETAILS:
        details = details[:_MAX_DETAILS] + f"... ({len(details) - _MAX_DETAILS} more characters)"
    return status_of(error), details, type(error).__name__, _fields_json(error.fields())


def _fields_json(fields: dict[str, Any]) -> str:
    """The fields as JSON within `_MAX_FIELDS`: a long list of problems keeps its first ones and a count of
    the rest; fields that still do not fit are left out ("", the class is rebuilt from the message)."""
    text = json.dumps(fields, default=str)
    problems = fields.get("problems")
    if len(text) > _MAX_FIELDS and isinstance(problems, list):
        kept = [str(p)[:150] for p in problems[:4]]
        if len(problems) > len(kept):
            kept.append(f"... and {len(problems) - len(kept)} more")
        text = json.dumps({**fields, "problems": kept}, default=str)
    return text if len(text) <= _MAX_FIELDS else ""


async def abort(context: aio.ServicerContext[Any, Any], error: WorkerAbstractionError) -> NoReturn:
    """The server-side boundary: turn one of our errors into its status code, class and fields."""
    code, details, kind, fields = describe(error)
    metadata = [(ERROR_KEY, kind)] + ([(FIELDS_KEY, fields)] if fields else [])
    context.set_trailing_metadata(tuple(metadata))
    await context.abort(code, details)
    raise AssertionError("unreachable: context.abort raises")


def error_from(error: aio.AioRpcError, unavailable: Callable[[str], WorkerAbstractionError]) -> WorkerAbstractionError:
    """The client-side boundary: the error a failed call stands for.

    Args:
        error: the failed call.
        unavailable: makes the error for "the server could not be reached / did not answer".
    """
    metadata: Any = error.trailing_metadata() or ()
    found = {str(key): str(value) for key, value in metadata if key in (ERROR_KEY, FIELDS_KEY)}
    return rebuild(
        error.code(), error.details() or "", found.get(ERROR_KEY, ""), found.get(FIELDS_KEY, ""), unavailable
    )


def rebuild(
    code: grpc.StatusCode,
    details: str,
    error_type: str,
    fields_json: str,
    unavailable: Callable[[str], WorkerAbstractionError],
) -> WorkerAbstractionError:
    """The error that `describe` described (the most fitting one for the code when the class is unknown)."""
    kind = error_class(error_type)
    if kind is not None and issubclass(kind, StoreUnavailableError):
        # The server's store did not answer: to its caller that is the server being unavailable, in the
        # caller's own terms (the error its retry loops catch), not a store it never talks to.
        return unavailable(f"{code.name}: {details}")
    if kind is not None and fields_json:
        try:
            return kind(**json.loads(fields_json))
        except (TypeError, ValueError):
            pass  # fields of another version: fall back to the status code
    if kind is not None and kind.fields is WorkerAbstractionError.fields:
        return kind(details)
    if code in TRANSPORT_CODES or code is grpc.StatusCode.CANCELLED:
        return unavailable(f"{code.name}: {details}")
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidParametersError([details])
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return PermissionDeniedError(f"{code.name}: {details}")
    return WorkerAbstractionError(f"{code.name}: {details}")


class ErrorBoundary(aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    """The server side's one error boundary: a handler raises, the caller gets the right status.

    Our errors travel with their class and fields (`abort`); anything else is a bug, logged here and
    answered INTERNAL, so no exception ever reaches a caller as UNKNOWN.
    """

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        return rewrap(
            handler,
            answer_once=lambda behavior: _guard_unary(behavior, method),
            answer_stream=lambda behavior: _guard_stream(behavior, method),
            decode=_lenient(handler.request_deserializer),
        )


class _Undecodable:
    """A request whose bytes are not the message the method takes (answered INVALID_ARGUMENT)."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """The method's request decoder, returning `_Undecodable` instead of raising (gRPC would say UNKNOWN)."""
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:
            return _Undecodable(f"the request is not a valid message for this method ({type(error).__name__})")

    return decode


def _checked(request: Any) -> Any:
    """The request itself, or for a stream of them, the stream: raising for bytes that were not a message."""
    if isinstance(request, _Undecodable):
        raise InvalidRequestError([request.problem])
    if hasattr(request, "__aiter__"):
        return _checked_stream(request)
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Undecodable):
            raise InvalidRequestError([request.problem])
        yield request


def _guard_unary(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    async def guarded(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(_checked(request), context)
        except (aio.AbortError, aio.BaseError, asyncio.CancelledError):  # (BaseError: the call itself broke)
            raise
        except WorkerAbstractionError as error:
            await abort(context, error)
        except Exception:
            await _internal(context, method)

    return guarded


def _guard_stream(behavior: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., AsyncIterator[Any]]:
    async def guarded(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            async for response in behavior(_checked(request), context):
                yield response
        except (aio.AbortError, aio.BaseError, asyncio.CancelledError, GeneratorExit):  # (BaseError: the call broke)
            raise
        except WorkerAbstractionError as error:
            await abort(context, error)
        except Exception:
            await _internal(context, method)

    return guarded


_LOG_EVERY_SECONDS = 10.0  # one traceback per method this often at most: a flood of bad requests is one line
_last_logged: dict[str, float] = {}
_unlogged: dict[str, int] = {}


async def _internal(context: aio.ServicerContext[Any, Any], method: str) -> NoReturn:
    now = time.monotonic()
    if now - _last_logged.get(method, -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS and len(_last_logged) < 1024:
        _last_logged[method] = now
        more = _unlogged.pop(method, 0)
        logger.exception("%s failed%s", method, f" (and {more} more times since the last report)" if more else "")
    else:
        _unlogged[method] = _unlogged.get(method, 0) + 1
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}; the server logged it")
    raise AssertionError("unreachable: context.abort raises")


def security_of(tls: TLSConfig | None) -> str:
    """How a server listens, for its start-up log line: "", " (TLS)" or " (mTLS)"."""
    if tls is None:
        return ""
    return " (mTLS)" if tls.require_client_cert else " (TLS)"
