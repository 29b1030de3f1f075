"""UpdateLog: every task's updates in a JetStream stream, so that any replica can replay and follow them.

When several orchestrator daemons share tasks, the replica that runs a task is often not the one its
caller submitted it to or watches it through, and the one that runs it may die halfway. So the replica
that runs a task publishes each of its updates here, numbered as WatchTask numbers them (1, 2, ...), and
any replica follows them: first what the stream kept, then what is published from then on.

- The stream (`WA_UPDATES` by default, limits retention) has one subject per task, `wa.updates.<token>`
  (the token a digest of the task id, so any id fits). It keeps a task's updates for `max_age_seconds`,
  at most `max_per_task` of them (the oldest go first), and `max_bytes` in all. A finished task's last update
  may roll its earlier ones up and carry a TTL (a retention), so that its updates expire with it.
- `publish` waits until the stream stored the update. Its `Nats-Msg-Id` is the task and the number, so a
  replica that takes a task over and publishes an update again (it cannot know whether the dead one did)
  stores it once.
- `follow(task_id, after)` yields each update numbered above `after`, in order and once: it listens to the
  live updates of every task (one subscription per replica, routed by subject) before it reads what the
  stream kept, so none falls between the two; a gap in the live ones (a reconnection) is filled from the
  stream. It ends only when its caller stops reading: the caller knows which update is the last.
- `last(task_id)` is the number of the last update kept (0 for none): where a replica that takes a task
  over goes on numbering.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from worker_abstraction.stores.jetstream.connection import NatsStoreError, NatsUnavailableError, ensure_stream

logger = logging.getLogger(__name__)

DEFAULT_STREAM = "WA_UPDATES"
SUBJECT_PREFIX = "wa.updates"
SEQUENCE_HEADER = "Wa-Seq"
_TOKEN_CHARS = 32  # hex digits of the task id's digest in its subject (128 bits)


@dataclass(frozen=True, slots=True)
class UpdateLogOptions:
    """How the updates are kept.

    Args:
        stream: the stream's name (its subjects are `wa.updates.*`).
        max_age_seconds: how long a task's updates stay replayable.
        max_per_task: updates kept per task (the oldest go first).
        max_bytes: bytes the stream keeps in all (the oldest updates go first).
        replicas: copies of the stream in a NATS cluster (1, or 3 for R3).
        duplicate_window_seconds: how long an update's number is remembered (a second publish is dropped).
        live_backlog: live updates a follower may leave unread; past that it reads them from the stream.
        answer_timeout_seconds: how long a publish or a read waits for the server.
    """

    stream: str = DEFAULT_STREAM
    max_age_seconds: float = 24 * 3600.0
    max_per_task: int = 10_000
    max_bytes: int = 2**30
    replicas: int = 1
    duplicate_window_seconds: float = 120.0
    live_backlog: int = 10_000
    answer_timeout_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class Listening:
    """A task's live updates kept for a follow (see `UpdateLog.listen`)."""

    token: str
    queue: asyncio.Queue[tuple[int, bytes] | None]


@functools.lru_cache(maxsize=8192)
def task_token(task_id: str) -> str:
    """The subject token of a task's updates: a digest, so any task id fits in a subject."""
    return hashlib.sha256(task_id.encode()).hexdigest()[:_TOKEN_CHARS]


def stream_config(options: UpdateLogOptions) -> StreamConfig:
    """The update log's stream. It takes rollups and per-message TTLs: a finished task's last update may roll
    its earlier ones up and expire (a retention: `homes.nats.partitioned_expiry`)."""
    return StreamConfig(
        name=options.stream,
        subjects=[f"{SUBJECT_PREFIX}.*"],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=options.max_age_seconds,
        max_msgs_per_subject=options.max_per_task,
        max_bytes=options.max_bytes,
        storage=StorageType.FILE,
        num_replicas=options.replicas,
        duplicate_window=options.duplicate_window_seconds,
        allow_rollup_hdrs=True,
        allow_msg_ttl=True,
    )


_SETTLE_SECONDS = 0.05  # how long a follow waits for its first live update before it reads the stream again


class UpdateLog:
    """Every task's updates, as one replica publishes and follows them; open it with `UpdateLog.open`."""

    def __init__(self, js: JetStreamContext, options: UpdateLogOptions) -> None:
        self._js = js
        self.options = options
        self._followers: dict[str, set[asyncio.Queue[tuple[int, bytes] | None]]] = {}
        self._live: Subscription | None = None

    @classmethod
    async def open(cls, client: Client, options: UpdateLogOptions | None = None) -> UpdateLog:
        """Create the stream if missing and start listening to live updates.

        Raises:
            NatsStoreError: the stream cannot be created, or the subscription made.
        """
        options = options or UpdateLogOptions()
        if min(options.max_per_task, options.max_bytes, options.live_backlog) < 1 or not 1 <= options.replicas <= 5:
            raise NatsStoreError(f"update log options: {options!r} (each bound at least 1, replicas 1 to 5)")
        js = client.jetstream(timeout=options.answer_timeout_seconds)
        config = stream_config(options)
        log = cls(js, options)
        try:
            await ensure_stream(js, config)
            log._live = await client.subscribe(f"{SUBJECT_PREFIX}.*", cb=log._route)
        except (TimeoutError, NatsError, APIError) as error:
            raise NatsUnavailableError(f"cannot open the NATS update log {options.stream!r}: {error!r}") from error
        return log

    async def publish(self, task_id: str, sequence: int, data: bytes) -> None:
        """Store update number `sequence` of a task (again is fine: it is stored once).

        Raises:
            NatsStoreError: NATS did not store it.
        """
        token = task_token(task_id)
        headers = {"Nats-Msg-Id": f"{token}:{sequence}", SEQUENCE_HEADER: str(sequence)}
        try:
            await self._js.publish(f"{SUBJECT_PREFIX}.{token}", data, headers=headers)
        except (TimeoutError, NatsError, APIError) as error:
            raise NatsUnavailableError(
                f"update {sequence} of task {task_id[:40]!r} was not stored: {error!r}"
            ) from error

    async def last(self, task_id: str) -> int:
        """The number of the last update kept for a task (0: none)."""
        try:
            stored = await self._js.get_last_msg(self.options.stream, f"{SUBJECT_PREFIX}.{task_token(task_id)}")
        except NotFoundError:
            return 0
        except (TimeoutError, NatsError, APIError) as error:
            raise NatsUnavailableError(f"cannot read the updates of task {task_id[:40]!r}: {error!r}") from error
        return _sequence_of(stored.headers)

    async def kept(self, task_id: str, after: int = 0) -> list[tuple[int, bytes]]:
        """What the stream holds of a task's updates now, numbered above `after`, in order (one read).

        Raises:
            NatsUnavailableError: the stream cannot be read.
        """
        return [item async for item in self._kept(task_token(task_id), after)]

    def listen(self, task_id: str) -> Listening:
        """Start keeping a task's live updates for a `follow` to come (at once: none published from now on
        is missed); `unlisten` it when done."""
        listening = Listening(task_token(task_id), asyncio.Queue(self.options.live_backlog))
        self._followers.setdefault(listening.token, set()).add(listening.queue)
        return listening

    def unlisten(self, listening: Listening) -> None:
        followers = self._followers.get(listening.token)
        if followers is not None:
            followers.discard(listening.queue)
            if not followers:
                del self._followers[listening.token]

    async def follow(
        self, task_id: str, after: int = 0, *, fresh: bool = False, listening: Listening | None = None
    ) -> AsyncGenerator[tuple[int, bytes], None]:
        """Each update of a task numbered above `after`, in order, once: what was kept, then what comes.

        `fresh`: nothing can have been published before `listening` was made (the task was accepted here a
        moment ago, and nobody publishes before taking it from the queue), so the stream is not read first
        (a gap still is). `listening`: made by `listen` beforehand (and unlistened by its maker); without
        it the follow listens from its first step on.

        Raises:
            NatsStoreError: what the stream kept cannot be read.
        """
        own = listening is None
        if listening is None:
            listening = self.listen(task_id)
        token, live = listening.token, listening.queue
        try:
            seen = after
            if not fresh:
                async for sequence, data in self._kept(token, seen):
                    seen = sequence
                    yield sequence, data
            settling = not fresh
            while True:
                if settling:
                    # An update routed just before this replica's subscription counted, and stored just after
                    # the read above, reaches neither: if nothing comes live at once, the stream is read again.
                    settling = False
                    try:
                        item = await asyncio.wait_for(live.get(), _SETTLE_SECONDS)
                    except TimeoutError:
                        async for sequence, data in self._kept(token, seen):
                            seen = sequence
                            yield sequence, data
                        continue
                else:
                    item = await live.get()
                if item is None or item[0] > seen + 1:  # an overflow, or a gap: what the stream kept fills it
                    async for sequence, data in self._kept(token, seen):
                        seen = sequence
                        yield sequence, data
                    if item is None:
                        continue
                sequence, data = item
                if sequence > seen:  # (past a gap the stream could not fill, the update still counts)
                    seen = sequence
                    yield sequence, data
        finally:
            if own:
                self.unlisten(listening)

    def is_following(self, task_id: str) -> bool:
        """Whether a `follow` of this task is listening on this replica."""
        return task_token(task_id) in self._followers

    async def close(self) -> None:
        if self._live is not None:
            with contextlib.suppress(NatsError):
                await self._live.unsubscribe()
            self._live = None

    async def _kept(self, token: str, after: int) -> AsyncIterator[tuple[int, bytes]]:
        """What the stream holds for a task, numbered above `after`, in order."""
        subject = f"{SUBJECT_PREFIX}.{token}"
        try:
            last = await self._js.get_last_msg(self.options.stream, subject)
        except NotFoundError:
            return
        except (TimeoutError, NatsError, APIError) as error:
            raise NatsUnavailableError(f"cannot read the updates under {subject!r}: {error!r}") from error
        if _sequence_of(last.headers) <= after:
            return
        end = last.seq or 0
        try:
            reader = await self._js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
        except (TimeoutError, NatsError, APIError) as error:
            raise NatsUnavailableError(f"cannot read the updates under {subject!r}: {error!r}") from error
        try:
            seen = after
            while True:
                try:
                    message = await reader.next_msg(timeout=self.options.answer_timeout_seconds)
                except (TimeoutError, NatsError) as error:
                    raise NatsUnavailableError(f"reading the updates under {subject!r} stopped: {error!r}") from error
                sequence = _sequence_of(message.headers)
                if sequence > seen:  # (the first one kept may be past `after + 1`: older ones aged out)
                    seen = sequence
                    yield sequence, message.data
                if message.metadata.sequence is None or message.metadata.sequence.stream >= end:
                    return
        finally:
            with contextlib.suppress(NatsError):
                await reader.unsubscribe()

    async def _route(self, message: Msg) -> None:
        followers = self._followers.get(message.subject.rsplit(".", 1)[-1])
        if not followers:
            return
        item = (_sequence_of(message.headers), message.data)
        for live in followers:
            try:
                live.put_nowait(item)
            except asyncio.QueueFull:  # a follower that stopped reading: it reads the stream when it is back
                with contextlib.suppress(asyncio.QueueEmpty):
                    live.get_nowait()
                live.put_nowait(None)


def _sequence_of(headers: dict[str, str] | None) -> int:
    try:
        return int((headers or {}).get(SEQUENCE_HEADER, "0"))
    except ValueError:
        return 0
