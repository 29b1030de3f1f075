"""WorkQueue: work shared by several orchestrator daemons, as leases on a JetStream work-queue stream.

This is the layer on which several `wa orchestrator` replicas share one set of tasks: a task accepted by
any replica is put in the queue once (its key, under its partition: the capability), and one replica at a
time holds it, on a lease, until it is done; a replica that dies loses its leases, and the work goes to
another replica. What a task is (its record, its attempts, its outcome) lives elsewhere; here is only who
holds which key.

- The stream (`WA_WORK` by default) has work-queue retention: a message is removed once acknowledged.
  Each partition has a subject of its own (`wa.work.<token>`, the token a digest of the partition's name,
  so any name fits) and one durable pull consumer (`w-<token>`) that every replica shares: the server
  delivers each message to one of them. A replica takes work of a partition only when it has room for it,
  so one busy capability never holds up another.
- `put` publishes with `Nats-Msg-Id` (the key, unless another dedupe id is given): a put retried after a
  lost answer is stored once. With `max_queued` messages waiting, the stream refuses more (`QueueFullError`).
- A lease lasts `lease_seconds` (the consumer's ack wait). The queue keeps every lease it holds alive
  (an in-progress acknowledgement every third of that), so a task may run for as long as it needs; a
  replica that stops keeping them (killed, cut off) loses them all within `lease_seconds`, and the server
  delivers them again, to whichever replica asks next, with a higher delivery count.
- A holder knows when its lease may have lapsed: a lease counts as held for `TRUSTED_SHARE` of
  `lease_seconds` from the start of the last keeping round the server confirmed (it answered a ping sent
  after the keeps), which is before the server's own deadline as long as a keep reaches it within the rest
  (5 s of the default 30). Past that, `Lease.alive()` is False; the keeper lets such a lease go (it is never
  acknowledged or given back from here) and calls its `on_lost`, and the holder stops acting on the work.
- `Lease.done()` acknowledges (the message is gone); `Lease.give_back(delay)` returns it at once or after
  `delay` seconds. `close()` gives back every lease still held, so a replica that stops cleanly hands its
  work over at once rather than after `lease_seconds`.
- A message delivered `max_deliveries` times without being done (work that kills its holder each time)
  is not delivered again; the server's MAX_DELIVERIES advisory for it is kept in a stream of its own
  (`<stream>_EXHAUSTED`), so `exhausted()` finds it even when no replica was up when it happened, and
  `Exhausted.settle()` removes the work for good once it has been dealt with (e.g. dead-lettered).

Acknowledgements are not awaited: one that is lost makes the server deliver the work again, and the
holder of the task's record decides what a repeated delivery means (a finished task is just settled).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from worker_abstraction.errors import QueueFullError
from worker_abstraction.stores.availability import raise_if_cancelled
from worker_abstraction.stores.jetstream.connection import (
    NATS_ERRORS,
    NatsStoreError,
    NatsUnavailableError,
    ensure_stream,
)

logger = logging.getLogger(__name__)

DEFAULT_STREAM = "WA_WORK"
SUBJECT_PREFIX = "wa.work"
_ADVISORY_PREFIX = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
_EXHAUSTED_CONSUMER = "exhausted"
_MAX_MESSAGES_EXCEEDED = 10077
_TOKEN_CHARS = 24  # hex digits of the partition digest in subjects and consumer names (96 bits)
TRUSTED_SHARE = 5 / 6  # of lease_seconds from a confirmed keeping round: how long a lease counts as held


@dataclass(frozen=True, slots=True)
class WorkQueueOptions:
    """How the shared queue is kept.

    Args:
        stream: the work-queue stream's name (its subjects are `wa.work.*`; one queue per NATS account).
        lease_seconds: a lease not kept alive for this long goes to another replica.
        max_deliveries: deliveries of one message before it is left to `exhausted()`.
        max_queued: messages the stream holds at most; more are refused.
        max_leased: leases of one partition outstanding at once, over all replicas.
        replicas: copies of the stream in a NATS cluster (1, or 3 for R3).
        duplicate_window_seconds: how long a put's dedupe id is remembered.
        answer_timeout_seconds: how long a put, a take or a settle waits for the server.
    """

    stream: str = DEFAULT_STREAM
    lease_seconds: float = 30.0
    max_deliveries: int = 10
    max_queued: int = 1_000_000
    max_leased: int = 100_000
    replicas: int = 1
    duplicate_window_seconds: float = 120.0
    answer_timeout_seconds: float = 5.0


def partition_token(partition: str) -> str:
    """The subject token and consumer-name part of a partition: a digest, so any name fits in a subject."""
    return hashlib.sha256(partition.encode()).hexdigest()[:_TOKEN_CHARS]


class Lease:
    """One piece of work this replica holds until it is done or given back."""

    __slots__ = ("_message", "_queue", "deliveries", "kept_until", "key", "on_lost", "partition")

    def __init__(self, queue: WorkQueue, partition: str, message: Msg, kept_until: float) -> None:
        self._queue = queue
        self._message = message
        self.partition = partition
        self.key = message.data.decode(errors="replace")
        self.deliveries = message.metadata.num_delivered or 1  # 1 the first time
        self.kept_until = kept_until  # (time.monotonic()) it counts as held until then; each keeping moves it on
        self.on_lost: Callable[[], None] | None = None  # called once, if the keeper finds it lapsed while held

    @property
    def held(self) -> bool:
        return self._queue.holds(self)

    def alive(self) -> bool:
        """Held, and kept recently enough that the server cannot have given the work to anyone else yet."""
        return time.monotonic() < self.kept_until and self.held

    async def done(self) -> None:
        """The work is finished: it leaves the queue (nothing happens if this lease was already let go)."""
        if self._queue.let_go(self):
            await self._queue.settle(self._message.ack())

    async def give_back(self, delay_seconds: float | None = None) -> None:
        """Let another replica (or this one) take the work, at once or after `delay_seconds`."""
        if self._queue.let_go(self):
            await self._queue.settle(self._message.nak(delay=delay_seconds))

    def keep(self) -> asyncio.Future[None] | None:
        """Extend the lease by `lease_seconds` now (the queue does this by itself every third of that)."""
        return asyncio.ensure_future(self._message.in_progress()) if self.held else None


@dataclass(frozen=True, slots=True)
class Exhausted:
    """Work delivered `max_deliveries` times and never done: `settle()` removes it for good."""

    key: str
    partition_token: str
    deliveries: int
    sequence: int  # its sequence in the work stream
    _queue: WorkQueue
    _advisory: Msg

    async def settle(self) -> None:
        """Remove the work for good and let its advisory go.

        Raises:
            NatsUnavailableError: NATS did not answer (the advisory comes back later, to be settled then).
        """
        await self._queue.remove(self.sequence)
        try:
            await self._advisory.ack()
        except NATS_ERRORS as error:
            raise NatsUnavailableError(f"the advisory of exhausted work {self.key[:40]!r} stays: {error!r}") from error


class WorkQueue:
    """The shared queue as one replica sees it; open it with `WorkQueue.open`."""

    def __init__(
        self,
        client: Client,
        js: JetStreamContext,
        options: WorkQueueOptions,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._js = js
        self.options = options
        self._sleep = sleep  # how the keeper waits between rounds (a test may hold it up)
        self._held: dict[int, Lease] = {}  # by id(): a message redelivered to us is a new Lease
        self._subscriptions: dict[str, JetStreamContext.PullSubscription] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._exhausted: JetStreamContext.PullSubscription | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        client: Client,
        options: WorkQueueOptions | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> WorkQueue:
        """Create the stream (and the one keeping exhausted work's advisories) if missing, and start keeping leases.

        `sleep` is how the lease keeper waits between its rounds (a test holds it up to let leases lapse).

        Raises:
            NatsStoreError: the streams cannot be created or read (named, with the server's answer).
        """
        options = options or WorkQueueOptions()
        _check(options)
        js = client.jetstream(timeout=options.answer_timeout_seconds)
        work = StreamConfig(
            name=options.stream,
            subjects=[f"{SUBJECT_PREFIX}.*"],
            retention=RetentionPolicy.WORK_QUEUE,
            discard=DiscardPolicy.NEW,
            max_msgs=options.max_queued,
            storage=StorageType.FILE,
            num_replicas=options.replicas,
            duplicate_window=options.duplicate_window_seconds,
        )
        exhausted_stream = f"{options.stream}_EXHAUSTED"
        exhausted = StreamConfig(
            name=exhausted_stream,
            subjects=[f"{_ADVISORY_PREFIX}.{options.stream}.*"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=options.replicas,
        )
        try:
            for config in (work, exhausted):
                await ensure_stream(js, config)
            await js.add_consumer(
                exhausted_stream,
                ConsumerConfig(durable_name=_EXHAUSTED_CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0),
            )
            queue = cls(client, js, options, sleep=sleep)
            queue._exhausted = await js.pull_subscribe_bind(_EXHAUSTED_CONSUMER, stream=exhausted_stream)
        except (TimeoutError, NatsError, APIError) as error:
            raise NatsUnavailableError(f"cannot open the NATS work queue {options.stream!r}: {error!r}") from error
        queue._keeper = asyncio.create_task(queue._keep_leases(), name="work-queue-keeper")
        return queue

    async def put(self, partition: str, key: str, *, dedupe_id: str | None = None) -> int:
        """Queue `key` under `partition` (once, however often this is retried with one dedupe id).

        Returns:
            The message's sequence in the stream.

        Raises:
            QueueFullError: the stream holds `max_queued` messages already.
            NatsStoreError: NATS did not store it (unreachable, or no answer in time).
        """
        subject = f"{SUBJECT_PREFIX}.{partition_token(partition)}"
        try:
            ack = await self._js.publish(subject, key.encode(), headers={"Nats-Msg-Id": dedupe_id or key})
        except APIError as error:
            if error.err_code == _MAX_MESSAGES_EXCEEDED:
                raise QueueFullError(partition, self.options.max_queued, "the shared work queue") from error
            raise NatsUnavailableError(f"the work queue refused {key[:40]!r}: {error!r}") from error
        except (TimeoutError, NatsError) as error:
            raise NatsUnavailableError(f"the work queue did not store {key[:40]!r}: {error!r}") from error
        return ack.seq

    async def take(self, partition: str, count: int, *, wait_seconds: float) -> list[Lease]:
        """Up to `count` pieces of work of `partition`, waiting at most `wait_seconds` for the first.

        Returns:
            The leases taken (none if nothing came in time).

        Raises:
            NatsStoreError: the partition's consumer cannot be made or read.
        """
        if count < 1 or self._closed:
            return []
        subscription = await self._subscription(partition)
        until = time.monotonic() + wait_seconds
        # Asked for in turns of at most the part of a lease that is not trusted: a lease delivered at the end
        # of a turn is still trusted for most of its time (its clock started at delivery, after `asked`).
        turn = self.options.lease_seconds * (1 - TRUSTED_SHARE)
        try:
            while True:
                asked = time.monotonic()
                try:
                    messages = await subscription.fetch(count, timeout=max(min(until - asked, turn), 0.01))
                    break
                except (TimeoutError, NatsTimeoutError):
                    raise_if_cancelled()  # (nats-py may turn a cancel into a timeout)
                    if time.monotonic() >= until:
                        return []
        except NatsError as error:
            raise NatsUnavailableError(f"cannot take work of {partition[:40]!r}: {error!r}") from error
        leases = []
        for message in messages:
            lease = Lease(self, partition, message, asked + self.options.lease_seconds * TRUSTED_SHARE)
            self._held[id(lease)] = lease
            leases.append(lease)
        return leases

    async def exhausted(self, count: int, *, wait_seconds: float) -> list[Exhausted]:
        """Work delivered `max_deliveries` times without being done, up to `count`, oldest first.

        Raises:
            NatsUnavailableError: the advisories, or the work they name, cannot be read now.
        """
        assert self._exhausted is not None, "open() the queue first"
        try:
            advisories = await self._exhausted.fetch(count, timeout=max(wait_seconds, 0.01))
        except (TimeoutError, NatsTimeoutError):
            return []
        except NATS_ERRORS as error:  # (a ServiceUnavailableError while a node dies, a lost connection)
            raise NatsUnavailableError(f"cannot read the exhausted work: {error!r}") from error
        found = []
        for advisory in advisories:
            try:
                event = json.loads(advisory.data)
                sequence = int(event["stream_seq"])
                deliveries = int(event.get("deliveries", 0))
            except (ValueError, KeyError, TypeError):
                await _let_go(advisory)  # not an advisory we can read: nothing to move
                continue
            try:
                stored = await self._js.get_msg(self.options.stream, sequence)
            except NotFoundError:
                await _let_go(advisory)  # done or removed since
                continue
            except NATS_ERRORS as error:  # (the advisories not handled come back after their ack wait)
                raise NatsUnavailableError(f"cannot read exhausted work {sequence}: {error!r}") from error
            subject = stored.subject or ""
            key = (stored.data or b"").decode(errors="replace")
            found.append(Exhausted(key, subject.rsplit(".", 1)[-1], deliveries, sequence, self, advisory))
        return found

    async def remove(self, sequence: int) -> None:
        """Remove the work stored under `sequence` (already gone is fine).

        Raises:
            NatsUnavailableError: NATS did not answer.
        """
        try:
            await self._js.delete_msg(self.options.stream, sequence)
        except NotFoundError:
            pass
        except NATS_ERRORS as error:
            raise NatsUnavailableError(f"cannot remove work {sequence}: {error!r}") from error

    def holds(self, lease: Lease) -> bool:
        return id(lease) in self._held and self._held[id(lease)] is lease

    def let_go(self, lease: Lease) -> bool:
        """Stop keeping `lease`; False if it was let go already."""
        return self._held.pop(id(lease), None) is not None

    @property
    def leases(self) -> list[Lease]:
        """The leases this replica holds."""
        return list(self._held.values())

    async def settle(self, answer: Awaitable[None]) -> None:
        try:
            await answer  # (nats-py publishes the acknowledgement; nothing comes back)
        except NatsError as error:  # the lease then runs out and the server delivers the work again
            logger.warning("work queue: an acknowledgement was not sent: %r", error)

    async def close(self, *, give_back: bool = True) -> None:
        """Stop keeping leases and give every one still held back at once (the client stays open); without
        `give_back`, let them lapse instead (NATS is not answering: each goes to another replica in time)."""
        self._closed = True
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        for lease in self.leases:
            if give_back and lease.alive():
                await lease.give_back()
            else:
                self.let_go(lease)  # lapsed: it may be another replica's now
        for subscription in [*self._subscriptions.values(), *([self._exhausted] if self._exhausted else [])]:
            with contextlib.suppress(NatsError):
                await subscription.unsubscribe()
        self._subscriptions.clear()
        if give_back:
            with contextlib.suppress(NatsError, asyncio.TimeoutError):
                await self._client.flush(timeout=max(1, round(self.options.answer_timeout_seconds)))

    async def _subscription(self, partition: str) -> JetStreamContext.PullSubscription:
        found = self._subscriptions.get(partition)
        if found is not None:
            return found
        lock = self._opening.setdefault(partition, asyncio.Lock())
        async with lock:
            found = self._subscriptions.get(partition)
            if found is not None:
                return found
            token = partition_token(partition)
            config = ConsumerConfig(
                durable_name=f"w-{token}",
                filter_subject=f"{SUBJECT_PREFIX}.{token}",
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.options.lease_seconds,
                max_deliver=self.options.max_deliveries,
                max_ack_pending=self.options.max_leased,
            )
            try:
                await self._js.add_consumer(self.options.stream, config)  # the same config again is no change
                subscription = await self._js.pull_subscribe_bind(config.durable_name, stream=self.options.stream)
            except (TimeoutError, NatsError, APIError) as error:
                raise NatsUnavailableError(
                    f"cannot make the work queue's consumer for {partition[:40]!r}: {error!r}"
                ) from error
            self._subscriptions[partition] = subscription
            self._opening.pop(partition, None)
            return subscription

    async def _keep_leases(self) -> None:
        interval = self.options.lease_seconds / 3
        while True:
            await self._sleep(interval)
            try:
                await self._keep_round()
            except Exception:  # the next round tries again; the keeper itself never stops
                logger.exception("work queue: keeping the leases failed")

    async def _keep_round(self) -> None:
        """Let go of the leases that lapsed, extend the others, and trust them for longer once the server
        confirms it has the keeps (it answers a ping sent after them)."""
        began = time.monotonic()
        sent = []
        for lease in self.leases:
            if lease.kept_until <= began:
                self._lapsed(lease)
            elif (keeping := lease.keep()) is not None:
                sent.append((lease, keeping))
        if not sent:
            return
        results = await asyncio.gather(*(keeping for _, keeping in sent), return_exceptions=True)
        try:
            await self._client.flush(timeout=max(1, round(self.options.lease_seconds / 3)))
        except (NatsError, TimeoutError) as error:
            logger.warning("work queue: %d leases were not confirmed kept alive: %r", len(sent), error)
            return
        trusted = began + self.options.lease_seconds * TRUSTED_SHARE
        failed = 0
        for (lease, _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                failed += 1
            else:
                lease.kept_until = max(lease.kept_until, trusted)
        if failed:
            logger.warning("work queue: %d of %d leases could not be kept alive", failed, len(sent))

    def _lapsed(self, lease: Lease) -> None:
        """A lease not kept alive in time: the server may give its work to another replica, if it has not."""
        if not self.let_go(lease):
            return
        logger.warning("work queue: the lease on %r lapsed; another replica may hold its work now", lease.key[:40])
        if lease.on_lost is not None:
            try:
                lease.on_lost()
            except Exception:  # the holder's bug must not stop the keeper
                logger.exception("work queue: the holder of %r failed to hear its lease lapsed", lease.key[:40])


async def _let_go(advisory: Msg) -> None:
    """Acknowledge an advisory there is nothing to do for; unsent, it comes back and is let go again."""
    try:
        await advisory.ack()
    except NATS_ERRORS as error:
        logger.debug("work queue: an advisory was not acknowledged: %r", error)


def _check(options: WorkQueueOptions) -> None:
    problems = [
        problem
        for problem, wrong in (
            (f"lease_seconds must be at least 1, not {options.lease_seconds!r}", options.lease_seconds < 1),
            (f"max_deliveries must be at least 1, not {options.max_deliveries!r}", options.max_deliveries < 1),
            (f"max_queued must be at least 1, not {options.max_queued!r}", options.max_queued < 1),
            (f"max_leased must be at least 1, not {options.max_leased!r}", options.max_leased < 1),
            (f"replicas must be 1 to 5, not {options.replicas!r}", not 1 <= options.replicas <= 5),
        )
        if wrong
    ]
    if problems:
        raise NatsStoreError("work queue options: " + "; ".join(problems))
