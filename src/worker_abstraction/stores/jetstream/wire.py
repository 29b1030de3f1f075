"""What a JetStream write is on the wire: its headers and PUB/HPUB command, a batch of them handed to nats-py's
pending buffer in one piece (`publish_all`), and what the server's answer says (`outcome`: an `Ack`, or why
the write was not stored). `pipeline.JetStreamWriter` is their one user.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, ConnectionDrainingError
from nats.js.api import Header

from worker_abstraction.stores.jetstream.connection import WRONG_LAST_SEQUENCE, NatsStoreError, NatsUnavailableError

# The acknowledgement as nats-server 2.x writes it (without a domain): read without the JSON parser, a tenth
# of a write's CPU; anything else (an error, a domain, another server's spelling) goes to the JSON parser.
_PLAIN_ACK = re.compile(rb'\{"stream":"([^"\\]+)","seq":(\d+)(,"duplicate": ?true)?\}')
# (Header's members hash as their names, not as their values: plain strings to look headers up)
_EXPECTED_LAST_SUBJECT_SEQUENCE = Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value
_MSG_ID = Header.MSG_ID.value
_STATUS = Header.STATUS.value
_UNAVAILABLE_CODE = 503  # JetStream's "temporarily unavailable" (no leader, no quorum)
_HEADER_LINE = "NATS/1.0\r\n"
# (nats-py 2.x: `Client._send_command` appends to its pending buffer, `_flush_pending` wakes its flusher)
_RAW_PUBLISH = all(hasattr(Client, name) for name in ("_send_command", "_flush_pending"))


@dataclass(frozen=True, slots=True)
class Ack:
    """A write the stream stored: its stream, its sequence there (a KV key's revision), and whether the
    stream had stored its `msg_id` already (then `seq` is the first one's)."""

    stream: str
    seq: int
    duplicate: bool = False


class WriteRejectedError(NatsStoreError):
    """JetStream refused a write: `code` (an HTTP-like status), `err_code` (JetStream's own) and the
    server's `description`."""

    def __init__(self, subject: str, code: int, err_code: int, description: str) -> None:
        super().__init__(f"JetStream refused the write to {subject!r}: {description} ({code}/{err_code})")
        self.subject, self.code, self.err_code, self.description = subject, code, err_code, description


class WrongLastSequenceError(WriteRejectedError):
    """A compare-and-set lost: the subject's last sequence (a KV key's revision; 0 for a key that never
    existed) was not the one the write expected. Nothing was written."""


def headers_of(
    headers: dict[str, str] | None, expected_last_subject_sequence: int | None, msg_id: str | None
) -> dict[str, str] | None:
    """A write's headers: its own, and JetStream's for a compare-and-set and a message id."""
    if expected_last_subject_sequence is None and msg_id is None:
        return headers
    made = dict(headers or {})
    if expected_last_subject_sequence is not None:
        made[_EXPECTED_LAST_SUBJECT_SEQUENCE] = str(expected_last_subject_sequence)
    if msg_id is not None:
        made[_MSG_ID] = msg_id
    return made


def command(subject: str, reply: str, headers: dict[str, str] | None, data: bytes) -> bytes:
    """The NATS protocol's PUB (or, with headers, HPUB) of one message, as nats-py's `publish` writes it."""
    target = f"{subject} {reply}" if reply else subject
    if not headers:
        return b"".join((f"PUB {target} {len(data)}\r\n".encode(), data, b"\r\n"))
    block = "".join([_HEADER_LINE, *(f"{name}: {value}\r\n" for name, value in headers.items()), "\r\n"]).encode()
    return b"".join((f"HPUB {target} {len(block)} {len(block) + len(data)}\r\n".encode(), block, data, b"\r\n"))


async def publish_all(client: Client, messages: list[tuple[str, str, dict[str, str] | None, bytes]]) -> None:
    """Publish a batch of (subject, reply subject or "", headers, data) as one write to the connection.

    nats-py publishes one message per awaited call (a subject and header check, a command built, a flush
    asked for): over a batch, most of a write's CPU. Its own pending buffer takes the batch in one piece
    instead, and its flusher writes it out. With a nats-py whose internals differ, each message goes through
    `publish`.
    """
    if not messages:
        return
    if not _RAW_PUBLISH:
        for subject, reply, headers, data in messages:
            await client.publish(subject, data, reply=reply, headers=headers)
        return
    if client.is_closed:
        raise ConnectionClosedError
    if client.is_draining_pubs:
        raise ConnectionDrainingError
    joined = b"".join([command(subject, reply, headers, data) for subject, reply, headers, data in messages])
    client.stats["out_msgs"] += len(messages)
    client.stats["out_bytes"] += len(joined)
    await client._send_command(joined)
    flushing = client._flush_queue
    if flushing is not None and flushing.empty():
        await client._flush_pending()


def outcome(subject: str, msg: Msg) -> Ack | NatsStoreError:
    """What JetStream's answer to a write says: its `Ack`, or why it was not stored."""
    status = msg.headers.get(_STATUS) if msg.headers else None
    if status is not None and not msg.data:  # 503 "no responders": no stream listens on the subject (right now)
        return NatsUnavailableError(f"no JetStream stream answered for {subject!r} (status {status})")
    plain = _PLAIN_ACK.fullmatch(msg.data)
    if plain is not None:
        return Ack(plain[1].decode(), int(plain[2]), plain[3] is not None)
    try:
        answer: dict[str, Any] = json.loads(msg.data)
        error = answer.get("error")
        if error is None:
            return Ack(str(answer["stream"]), int(answer["seq"]), bool(answer.get("duplicate", False)))
        code, err_code = int(error.get("code", 0)), int(error.get("err_code", 0))
        description = str(error.get("description", ""))
    except (ValueError, KeyError, TypeError, AttributeError) as problem:
        return NatsStoreError(f"unreadable JetStream acknowledgement for {subject!r}: {msg.data[:200]!r} ({problem!r})")
    if err_code in WRONG_LAST_SEQUENCE:
        return WrongLastSequenceError(subject, code, err_code, description)
    if code == _UNAVAILABLE_CODE:
        return NatsUnavailableError(f"JetStream could not store {subject!r}: {description} ({code}/{err_code})")
    return WriteRejectedError(subject, code, err_code, description)
