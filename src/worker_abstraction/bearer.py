"""The caller's side of authentication: what a process sends with every call it makes.

To the registry and the orchestrator daemon, its bearer token. To a worker, never the token: a credential
signed for that worker's address alone, which lives minutes (see `signing`), so a worker that captures it
can use it nowhere else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from grpc import aio

from worker_abstraction import signing


class _Bearer:
    def __init__(self, authorization: Callable[[], str]) -> None:
        self._authorization = authorization

    def _with_token(self, details: Any) -> Any:
        pair = ("authorization", self._authorization())
        return details._replace(metadata=aio.Metadata(*(details.metadata or ()), pair))


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


def _interceptors(authorization: Callable[[], str]) -> list[Any]:
    return [kind(authorization) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


def bearer_interceptors(token: str) -> list[Any]:
    """Client interceptors that send `authorization: Bearer TOKEN` with every call of a channel."""
    value = f"Bearer {token}"
    return _interceptors(lambda: value)


def signed_interceptors(token: str, audience: str) -> list[Any]:
    """Client interceptors that send a credential signed with `token`'s key for `audience` alone (a worker's
    registered address) with every call of a channel, made anew before it expires."""
    signer = _signer(token)
    return _interceptors(lambda: signer.credential(audience))


@functools.lru_cache(maxsize=4)
def _signer(token: str) -> signing.Signer:
    return signing.Signer(token)


_token: str | None = None


def use_token(token: str | None) -> None:
    """Send `token` on every channel this process makes from now on (None: send none). `wa` sets it from
    --token / WA_TOKEN; a process has one identity, as a worker or a daemon does."""
    global _token
    _token = token or None


def channel_interceptors(audience: str | None = None) -> list[Any]:
    """What this process's channels send: nothing without a token; to a worker (`audience`, its registered
    address) a credential signed for it alone; to anything else the bearer token."""
    if not _token:
        return []
    return bearer_interceptors(_token) if audience is None else signed_interceptors(_token, audience)
