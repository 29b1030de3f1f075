"""A bound on what one HTTP request may send, for the agent protocols' routes (A2A beside the dashboard,
`wa mcp` over streamable HTTP): their SDKs read a request's whole body before they look at it, so the body is
read here first, up to the bound, and one past it (declared by `Content-Length`, or streamed) is refused with
413 without being read on; at most `MAX_BODY_BYTES` of a request is ever held."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 4 * 2**20  # as gRPC's default message bound: an agent's message carries arguments, not files


class BodyBound:
    """Wraps an ASGI app: requests whose body passes `limit` bytes are answered 413 (JSON), not read on."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._limit:
            await self._refuse(send)
            return
        # Read up to the bound first (the SDKs would hold the whole body anyway), then hand it on as one piece.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # (the caller went away)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: bytes | None = b"".join(chunks)

        async def replay() -> Message:
            nonlocal body
            if body is not None:
                whole, body = body, None
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self._app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": f"the request body may be at most {self._limit} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
