"""JetStreamWriter: JetStream publishes (and KV compare-and-sets) that many callers make at once share one write.

`JetStream.publish` is a request: one message out, then a wait for its acknowledgement before the next. A
writer instead takes every write made in one turn of the event loop, publishes them together (one socket
write) with a reply subject each under one inbox of its own (`_INBOX.<id>.<n>`, one wildcard subscription),
and resolves each write's future when its acknowledgement comes back: N concurrent writes cost one round
trip, not N.

- `write` returns a future at once; it never raises. The write goes out on the next turn of the loop with
  every other write made meanwhile (after `max_delay_seconds`, when set, unless `max_batch` writes are
  waiting), at most `max_batch` per socket write. Writes go out in the order they were made, so writes to
  one subject are stored in that order (JetStream takes one connection's messages in order).
- Many at once: `await asyncio.gather(*(writer.write(...) for ...))`, or one `kv_update` per task.
- `send` is a write nobody waits for: published in the same order and batches, with no reply subject, so
  the stream stores it without acknowledging it (nothing comes back, nothing is tracked). What NATS does not
  take (an outage, a full stream) is lost without a word: for what a later write or a fallback makes good.
- A KV bucket is a stream whose subject per key is `$KV.<bucket>.<key>`: `kv_create` publishes there
  expecting the key's last revision to be 0, `kv_update` expecting `last_revision`, as nats-py's KeyValue
  does, so nats-py reads back exactly what was written.

What a write's future ends with:

- an `Ack` (stream, seq; `duplicate` when the stream had the `msg_id` already: stored once, not again);
- `WrongLastSequenceError`: a compare-and-set lost (the subject's last sequence was not the one expected);
  the other writes of its batch are not affected;
- `WriteRejectedError`: JetStream refused the write for another reason (its code and description);
- `NatsUnavailableError`: no acknowledgement within `ack_timeout_seconds`; the connection was lost after
  the write was sent (noticed within 0.1 s, well before the timeout); no stream listens on the subject; or
  the writer is closed. The write may have been stored all the same: a stream publish with a `msg_id` may
  simply be made again; a KV update made again may then fail as `WrongLastSequenceError` because the first
  one took (read the key to know). A write whose turn comes while the connection is down (nats-py
  reconnecting) or closed fails at once and is never sent.
- `WriterFullError` (a `NatsUnavailableError`) at once when `max_pending` writes are unanswered: NATS is
  slower than its writers, and waiting for room would only hide it. Retry later, as for any outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections import deque
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError, ConnectionDrainingError, OutboundBufferLimitError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, VALID_KEY_RE

from worker_abstraction.stores.jetstream.connection import NATS_ERRORS, NatsStoreError, NatsUnavailableError
from worker_abstraction.stores.jetstream.wire import (
    Ack,
    WriteRejectedError,
    WrongLastSequenceError,
    headers_of,
    outcome,
    publish_all,
)

__all__ = [
    "Ack",
    "JetStreamWriter",
    "WriteRejectedError",
    "WriterFullError",
    "WriterOptions",
    "WrongLastSequenceError",
    "kv_subject",
]

logger = logging.getLogger(__name__)

_WATCH_SECONDS = 0.1  # how soon a lost connection fails the writes waiting for their acknowledgements
_BUCKET = re.compile(r"^[a-zA-Z0-9_-]+$")
_NATS_OR_SOCKET: tuple[type[Exception], ...] = (*NATS_ERRORS, OSError)
_UNREACHABLE = (ConnectionClosedError, ConnectionDrainingError, OutboundBufferLimitError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class WriterOptions:
    """How a `JetStreamWriter` batches and waits.

    Args:
        max_batch: the most writes published together; a batch this full goes out without waiting.
        max_delay_seconds: how long a batch waits for more writes (0: only until the loop's next turn).
        ack_timeout_seconds: how long a write waits for its acknowledgement.
        max_pending: writes waiting to go out or for their acknowledgement; past it `write` fails at once.
    """

    max_batch: int = 256
    max_delay_seconds: float = 0.0
    ack_timeout_seconds: float = 5.0
    max_pending: int = 10_000


class WriterFullError(NatsUnavailableError):
    """`max_pending` writes are unanswered already: this one was not sent."""


class _Batch:
    """Writes sent together: they share a deadline, and the connection they were sent on."""

    __slots__ = ("deadline", "reconnects", "remaining", "tokens")

    def __init__(self, deadline: float, reconnects: int) -> None:
        self.deadline, self.reconnects = deadline, reconnects
        self.remaining = 0
        self.tokens: list[str] = []


class _Write:
    __slots__ = ("batch", "data", "future", "headers", "subject")

    def __init__(
        self, subject: str, data: bytes, headers: dict[str, str] | None, future: asyncio.Future[Ack] | None
    ) -> None:
        self.subject, self.data, self.headers, self.future = subject, data, headers, future
        self.batch: _Batch | None = None


class JetStreamWriter:
    """Pipelined JetStream writes on one connection; open it with `JetStreamWriter.open`, close it with
    `aclose` (or use it as an async context manager). Use it from the event loop it was opened on only."""

    def __init__(self, client: Client, options: WriterOptions, inbox: str) -> None:
        self._client = client
        self._options = options
        self._inbox = inbox + "."
        self._loop = asyncio.get_running_loop()
        self._queue: list[_Write] = []
        self._waiting: dict[str, _Write] = {}  # reply token -> a write sent, its acknowledgement not yet in
        self._batches: deque[_Batch] = deque()  # those writes' batches, oldest first (so by deadline)
        self._tokens = itertools.count()
        self._wake = asyncio.Event()
        self._watch: asyncio.TimerHandle | None = None
        self._subscription: Subscription | None = None
        self._sender: asyncio.Task[None] | None = None
        self._sending: list[_Write] = []  # the batch being published
        self._closed = False

    @classmethod
    async def open(cls, client: Client, options: WriterOptions | None = None) -> JetStreamWriter:
        """Subscribe to the writer's inbox and start sending.

        Raises:
            NatsStoreError: the options are out of range.
            NatsUnavailableError: the subscription could not be made.
        """
        options = options or WriterOptions()
        if options.max_batch < 1 or options.max_pending < 1 or options.max_delay_seconds < 0:
            raise NatsStoreError(f"writer options: {options!r} (max_batch, max_pending >= 1; max_delay >= 0)")
        if options.ack_timeout_seconds <= 0:
            raise NatsStoreError(f"writer options: ack_timeout_seconds must be > 0, not {options.ack_timeout_seconds}")
        writer = cls(client, options, client.new_inbox())
        try:
            writer._subscription = await client.subscribe(writer._inbox + "*", cb=writer._on_ack)
        except _NATS_OR_SOCKET as error:
            raise NatsUnavailableError(f"cannot subscribe to the writer's inbox: {error!r}") from error
        writer._sender = asyncio.create_task(writer._send_loop(), name="jetstream-writer")
        return writer

    async def __aenter__(self) -> JetStreamWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def pending(self) -> int:
        """Writes waiting to go out or for their acknowledgement."""
        return len(self._queue) + len(self._waiting)

    def write(
        self,
        subject: str,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        expected_last_subject_sequence: int | None = None,
        msg_id: str | None = None,
    ) -> asyncio.Future[Ack]:
        """Publish `data` to the stream listening on `subject`, with the next batch.

        Args:
            subject: where to publish (a stream's subject; `$KV.<bucket>.<key>` for a KV key).
            data: the message's payload.
            headers: more headers for the message.
            expected_last_subject_sequence: store it only if the subject's last sequence is this one (0: the
                subject has none yet); otherwise the future fails with `WrongLastSequenceError`.
            msg_id: the stream stores a message with this id once within its duplicate window.

        Returns:
            A future of the write's `Ack`, failing with one of the errors the module's docstring lists.
        """
        future: asyncio.Future[Ack] = self._loop.create_future()
        if self._closed:
            future.set_exception(NatsUnavailableError(f"the JetStream writer is closed; {subject!r} not written"))
            return future
        if self.pending >= self._options.max_pending:
            future.set_exception(
                WriterFullError(f"{self.pending} JetStream writes are unanswered; {subject!r} not written")
            )
            return future
        self._enqueue(_Write(subject, data, headers_of(headers, expected_last_subject_sequence, msg_id), future))
        return future

    def send(
        self,
        subject: str,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        expected_last_subject_sequence: int | None = None,
        msg_id: str | None = None,
    ) -> None:
        """`write`, unacknowledged (see the module's docstring): nothing tells whether it was stored. Dropped at
        once when the writer is closed or full, or NATS is not connected."""
        if self._closed or self.pending >= self._options.max_pending:
            return
        self._enqueue(_Write(subject, data, headers_of(headers, expected_last_subject_sequence, msg_id), None))

    def _enqueue(self, write: _Write) -> None:
        self._queue.append(write)
        if len(self._queue) == 1 or len(self._queue) >= self._options.max_batch:
            self._wake.set()

    async def kv_create(self, bucket: str, key: str, data: bytes) -> int:
        """Create a KV key (one deleted or purged counts as absent, as for nats-py); its revision.

        Raises:
            WrongLastSequenceError: the key exists.
            NatsStoreError: it was not written (see the module's docstring).
        """
        subject = kv_subject(bucket, key)
        try:
            return (await self.write(subject, data, expected_last_subject_sequence=0)).seq
        except WrongLastSequenceError:
            marker = await self._deleted_at(bucket, subject)
            if marker is None:
                raise
        return (await self.write(subject, data, expected_last_subject_sequence=marker)).seq

    async def kv_update(self, bucket: str, key: str, data: bytes, last_revision: int) -> int:
        """Replace a KV key's value if its revision is still `last_revision`; the new revision.

        Raises:
            WrongLastSequenceError: it is not (someone else wrote it, or deleted it).
            NatsStoreError: it was not written (see the module's docstring).
        """
        return (await self.write(kv_subject(bucket, key), data, expected_last_subject_sequence=last_revision)).seq

    async def aclose(self) -> None:
        """Stop: every write not answered yet fails with `NatsUnavailableError`, and the inbox is unsubscribed.
        Closing the connection is its owner's business."""
        if self._closed:
            return
        self._closed = True
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        closed = "the JetStream writer was closed before {subject!r} was acknowledged"
        queued, self._queue = self._queue, []
        if self._client.is_connected:  # what was sent unacknowledged still goes (the connection flushes it)
            for write in queued:
                if write.future is None:
                    with contextlib.suppress(Exception):
                        await self._client.publish(write.subject, write.data, headers=write.headers)
        for write in itertools.chain(self._sending, queued, self._waiting.values()):
            _fail(write, NatsUnavailableError(closed.format(subject=write.subject)))
        self._waiting.clear()
        self._batches.clear()
        if self._subscription is not None:
            with contextlib.suppress(*_NATS_OR_SOCKET):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _send_loop(self) -> None:
        delay = self._options.max_delay_seconds
        while True:
            await self._wake.wait()
            if delay > 0 and len(self._queue) < self._options.max_batch:
                self._wake.clear()  # from here on only a full batch sets it
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if len(self._queue) <= self._options.max_batch:
                    batch, self._queue = self._queue, []
                else:
                    batch = self._queue[: self._options.max_batch]
                    del self._queue[: self._options.max_batch]
                self._sending = batch
                try:
                    await self._send(batch)
                except Exception as error:  # a bug of ours, not NATS: its batch fails, the writer goes on
                    logger.exception("JetStream writer: a batch of %d writes failed", len(batch))
                    for write in batch:
                        _fail(write, NatsStoreError(f"{write.subject!r} not written: {error!r}"))
                self._sending = []
                if self._queue:
                    await asyncio.sleep(0)  # nats-py writes this batch out before the next is added

    async def _send(self, writes: list[_Write]) -> None:
        if not self._client.is_connected:
            # nats-py would buffer them until it reconnects, long after their callers gave up: refuse them now.
            for write in writes:
                _fail(write, NatsUnavailableError(f"NATS is not connected; {write.subject!r} not written"))
            return
        batch = _Batch(self._loop.time() + self._options.ack_timeout_seconds, self._client.stats["reconnects"])
        messages: list[tuple[_Write, str]] = []  # (write, reply subject)
        sent: list[tuple[_Write, str]] = []
        largest = self._client.max_payload
        for write in writes:
            if len(write.data) > largest:  # (the server would close the connection over it)
                _fail(write, NatsStoreError(f"{write.subject!r}: {len(write.data)} bytes, NATS takes {largest}"))
                continue
            if write.future is None:  # (sent unacknowledged)
                messages.append((write, ""))
                continue
            if write.future.done():
                continue  # its caller cancelled it
            token = str(next(self._tokens))
            write.batch = batch
            self._waiting[token] = write  # before publishing: a publish that waits for room may see its ack
            batch.tokens.append(token)
            batch.remaining += 1
            messages.append((write, self._inbox + token))
            sent.append((write, token))
        try:
            await publish_all(self._client, [(w.subject, reply, w.headers, w.data) for w, reply in messages])
        except Exception as error:  # nats-py's and the transport's: the batch went nowhere
            reason = NatsUnavailableError if isinstance(error, _UNREACHABLE) else NatsStoreError
            for write, token in sent:
                self._waiting.pop(token, None)
                batch.remaining -= 1
                _fail(write, reason(f"{write.subject!r} could not be published: {error!r}"))
        if batch.remaining:
            self._batches.append(batch)
            if self._watch is None:
                self._watch = self._loop.call_at(min(batch.deadline, self._loop.time() + _WATCH_SECONDS), self._check)

    async def _on_ack(self, msg: Msg) -> None:
        write = self._waiting.pop(msg.subject[len(self._inbox) :], None)
        if write is None:
            return  # answered late: its future failed already
        if write.batch is not None:
            write.batch.remaining -= 1
        if write.future is None or write.future.done():
            return
        answered = outcome(write.subject, msg)
        if isinstance(answered, Ack):
            write.future.set_result(answered)
        else:
            write.future.set_exception(answered)

    def _check(self) -> None:
        """Fail the writes whose acknowledgement can no longer come: past their deadline, or sent on a
        connection that has been lost since (the server answers on the connection a write came by)."""
        self._watch = None
        now = self._loop.time()
        connected = self._client.is_connected
        reconnects = self._client.stats["reconnects"]
        while self._batches:
            batch = self._batches[0]
            if batch.remaining > 0:
                if connected and batch.reconnects == reconnects:
                    if batch.deadline > now:
                        break
                    problem = f"no acknowledgement within {self._options.ack_timeout_seconds:g}s"
                else:
                    problem = "the connection to NATS was lost before it was acknowledged"
                for token in batch.tokens:
                    write = self._waiting.pop(token, None)
                    if write is not None:
                        _fail(write, NatsUnavailableError(f"{write.subject!r}: {problem}; it may have been stored"))
            self._batches.popleft()
        if self._batches:
            self._watch = self._loop.call_at(min(self._batches[0].deadline, now + _WATCH_SECONDS), self._check)

    async def _deleted_at(self, bucket: str, subject: str) -> int | None:
        """The revision of the delete or purge marker a KV key ends with (None: it ends with a value)."""
        js = self._client.jetstream(timeout=self._options.ack_timeout_seconds)
        try:
            last = await js.get_last_msg(f"KV_{bucket}", subject)
        except _NATS_OR_SOCKET as error:
            raise NatsUnavailableError(f"cannot read the last revision of {subject!r}: {error!r}") from error
        if last.headers and last.headers.get(KV_OP) in (KV_DEL, KV_PURGE):
            return last.seq
        return None


def kv_subject(bucket: str, key: str) -> str:
    """The subject of a KV key, as nats-py's KeyValue writes it.

    Raises:
        NatsStoreError: the bucket name or the key is not one NATS accepts.
    """
    if not _BUCKET.match(bucket):
        raise NatsStoreError(f"invalid KV bucket name {bucket!r}: letters, digits, '-' and '_' only")
    if not VALID_KEY_RE.match(key):
        raise NatsStoreError(f"invalid KV key {key!r}: letters, digits and '-/_=.' only")
    return f"$KV.{bucket}.{key}"


def _fail(write: _Write, error: NatsStoreError) -> None:
    if write.future is not None and not write.future.done():
        write.future.set_exception(error)
