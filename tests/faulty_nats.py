"""A real NATS connection that fails, on demand, the way nats-py fails when NATS goes away.

While `down`, a request finds no responders (nats-py raises NoRespondersError, and its JetStream layer turns
that into ServiceUnavailableError or NoStreamResponseError: what a cluster answers while a stream has no
leader), and a publish finds the outgoing buffer full (OutboundBufferLimitError: what a connection that lost
its server says), whether it goes through `publish` or is handed to nats-py's pending buffer as a batch (as
`JetStreamWriter` hands its writes). Tests hand it to the stores in place of a plain connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.client import Client
from nats.errors import NoRespondersError, OutboundBufferLimitError


class FaultyConnection(Client):
    """A nats-py `Client` whose requests (and, with `publishes_fail`, publishes) fail while `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.publishes_fail = True
        self.publish_error: type[Exception] = OutboundBufferLimitError  # what a refused publish raises
        self.refused: list[str] = []  # the subjects refused, in order
        self._awaited: list[tuple[str, asyncio.Event]] = []

    @classmethod
    async def open(cls, url: str) -> FaultyConnection:
        connection = cls()
        await connection.connect(servers=[url], allow_reconnect=True, max_reconnect_attempts=-1)
        return connection

    def refusal(self, prefix: str) -> asyncio.Event:
        """An event set once a subject starting with `prefix` is refused (at once if one was)."""
        event = asyncio.Event()
        if any(subject.startswith(prefix) for subject in self.refused):
            event.set()
        self._awaited.append((prefix, event))
        return event

    def _refuse(self, subject: str) -> None:
        self.refused.append(subject)
        for prefix, event in self._awaited:
            if subject.startswith(prefix):
                event.set()

    async def request(self, subject: str, payload: bytes = b"", *args: Any, **options: Any) -> Any:
        if self.down:
            self._refuse(subject)
            raise NoRespondersError
        return await super().request(subject, payload, *args, **options)

    async def publish(self, subject: str, payload: bytes = b"", reply: str = "", headers: Any = None) -> None:
        if self.down and self.publishes_fail:
            self._refuse(subject)
            raise self.publish_error
        await super().publish(subject, payload, reply, headers)

    async def _send_command(self, cmd: bytes, priority: bool = False) -> None:
        # (nats-py's own way out for every command; JetStreamWriter hands its batches of PUB/HPUB here)
        if self.down and self.publishes_fail and cmd.startswith((b"PUB ", b"HPUB ")):
            self._refuse(cmd.split(b" ", 2)[1].decode(errors="replace"))
            raise self.publish_error
        await super()._send_command(cmd, priority)
