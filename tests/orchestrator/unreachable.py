"""A channel that can be switched off: while the event is set, every unary call fails as UNAVAILABLE."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc import aio


class Unreachable(aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, down: asyncio.Event) -> None:
        self._down = down

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if self._down.is_set():
            raise aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, aio.Metadata(), aio.Metadata(), "switched off")
        return await continuation(details, request)


def channel_down_while(address: str, down: asyncio.Event) -> aio.Channel:
    """A channel to `address` that is cut off while `down` is set."""
    return aio.insecure_channel(address, interceptors=[Unreachable(down)])
