"""The one way this package's server interceptors wrap a method handler (the error boundary, the auth check)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import grpc

Wrap = Callable[[Any], Any]
Decode = Callable[[bytes], Any]

_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
)


def rewrap(
    handler: Any, *, answer_once: Wrap, answer_stream: Wrap, decode: Callable[[bytes], Any] | None = None
) -> Any:
    """`handler` with its behavior wrapped: by `answer_stream` when it yields its answers, by `answer_once`
    when it returns them (one message, or nothing from a streaming method that writes its answers with
    `context.write`, as grpc's own health service does); `decode` replaces its request decoder when given."""
    for attribute, make, streams in _KINDS:
        behavior = getattr(handler, attribute)
        if behavior is not None:
            yields = streams and not inspect.iscoroutinefunction(behavior)
            return make(
                (answer_stream if yields else answer_once)(behavior),
                request_deserializer=decode or handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler
