"""The caller's side of authentication: the bearer token a process sends with every call it makes."""

from __future__ import annotations

from typing import Any

from grpc import aio


class _Bearer:
    def __init__(self, token: str) -> None:
        self._pair = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        return details._replace(metadata=aio.Metadata(*(details.metadata or ()), self._pair))


# One class per kind of call: a channel files each interceptor under the first kind it is an instance of.
class _UnaryUnary(_Bearer, aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)


class _UnaryStream(_Bearer, aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)


class _StreamUnary(_Bearer, aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._with_token(details), requests)


class _StreamStream(_Bearer, aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._with_token(details), requests)


def bearer_interceptors(token: str) -> list[Any]:
    """Client interceptors that send `authorization: Bearer TOKEN` with every call of a channel."""
    return [kind(token) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


_token: str | None = None


def use_token(token: str | None) -> None:
    """Send `token` on every channel this process makes from now on (None: send none). `wa` sets it from
    --token / WA_TOKEN; a process has one identity, as a worker or a daemon does."""
    global _token
    _token = token or None


def channel_interceptors() -> list[Any]:
    return bearer_interceptors(_token) if _token else []
