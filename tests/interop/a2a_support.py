"""What the A2A tests share: a worker whose capabilities stream, ask and wait, and an A2A client of the SDK."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest, StreamResponse
from google.protobuf import json_format, struct_pb2

from tests.conftest import GATES
from worker_abstraction import BaseWorker, TaskContext, capability


class TeamWorker(BaseWorker):
    """Capabilities the A2A tests call: plain, streaming, asking, and one that runs until canceled."""

    name = "a2a-team-worker"

    @capability
    async def shout(self, text: str) -> str:
        """Say it louder.

        Args:
            text: what to say.
        """
        return text.upper()

    @capability
    async def spell(self, word: str, gate: str, ctx: TaskContext) -> dict[str, Any]:
        """Stream the letters of `word`, each as a chunk, once the gate called `gate` opens.

        Args:
            word: the word to spell.
            gate: the test's gate to wait for before spelling.
        """
        ctx.report_progress(0.1, "waiting to spell")
        await GATES.async_gate(gate).wait()
        for index, letter in enumerate(word):
            ctx.emit(letter, last=index == len(word) - 1)
        ctx.report_progress(1.0, "spelled")
        return {"word": word, "letters": len(word)}

    @capability
    async def hold(self, ctx: TaskContext) -> str:
        """Run until asked to cancel."""
        ctx.report_progress(0.5, "holding")
        await ctx.wait_cancel_requested()
        raise RuntimeError("stopped on request")

    @capability
    async def ship(self, item: str, ctx: TaskContext) -> dict[str, Any]:
        """Ask how many of `item` to ship, then ship them.

        Args:
            item: what to ship.
        """
        count = await ctx.request_input(f"How many {item}?", schema={"type": "integer", "minimum": 1})
        return {"item": item, "count": count}


def data(value: Any) -> Part:
    found = struct_pb2.Value()
    json_format.ParseDict(value, found)
    return Part(data=found)


def call(capability: str, params: dict[str, Any], **fields: Any) -> SendMessageRequest:
    """A request that starts `capability` with `params`, as the README says to name one."""
    parts = [data({"capability": capability, "params": params})]
    return SendMessageRequest(message=Message(role=Role.ROLE_USER, message_id=fields.pop("message_id", "m-1"),
                                              parts=parts, **fields))  # fmt: skip


def said(text: str, **metadata: Any) -> SendMessageRequest:
    """A request whose message is text, with `metadata` (e.g. `capability=...`)."""
    message = Message(role=Role.ROLE_USER, message_id="m-text", parts=[Part(text=text)])
    message.metadata.update(metadata)
    return SendMessageRequest(message=message)


def answer(task_id: str, value: Any, context_id: str = "") -> SendMessageRequest:
    message = Message(role=Role.ROLE_USER, message_id=f"answer-{task_id}", task_id=task_id, parts=[data(value)])
    if context_id:
        message.context_id = context_id
    return SendMessageRequest(message=message)


@contextlib.asynccontextmanager
async def a2a_client(url: str, *, token: str = "", streaming: bool = True, bindings: list[str] | None = None
                     ) -> AsyncIterator[Client]:  # fmt: skip
    """The SDK's client of the agent whose card is at `url` (its base address), with a bearer token if given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        config = ClientConfig(streaming=streaming, httpx_client=http, supported_protocol_bindings=bindings or [])
        client = await ClientFactory(config).create_from_url(url)
        try:
            yield client
        finally:
            await client.close()


async def collect(stream: AsyncIterator[StreamResponse]) -> list[StreamResponse]:
    return [event async for event in stream]
