"""PartitionLeases: which orchestrator replica runs the tasks of which partition, on one lease per replica.

Task ids hash to one of `partitions` partitions (`partition_of`); each live replica owns a share of them
(rendezvous hashing of the live replicas' names: `assign`, the same on every replica) and runs the tasks of
those it owns. It all lives in one JetStream KV bucket (`wa_partitions`, history 1):

- `member.<replica>` (the name base64url-encoded) = {"replica", "incarnation"}: the replica's one lease.
  It is created only where no live one is (a name is never held twice), under a fresh incarnation id,
  then rewritten every L/3 by compare-and-set on the revision last written; each value expires
  T = ceil(L) after it was stored (per-message TTL) and the server's expiry marker tells every watcher.
  A compare-and-set that fails means the key expired or was replaced: that incarnation is over for good
  (ids are never reused); the replica drops all it held and joins again. A renewal round is ONE KV write,
  however many partitions the replica holds (L = `lease_seconds`).
- `owner.<n>` = {"holder", "incarnation", "epoch"}, written only when partition n changes hands. A replica
  claims a partition it wins by compare-and-set on the revision it saw, with `epoch + 1`, when the key is
  absent, released (holder ""), or names its own incarnation or one that is over. It releases one it no
  longer wins, after awaiting `on_releasing`, by writing holder "", so a joining replica gets its share
  at once. `close()` awaits `on_releasing` for all it holds, then deletes its member key, which releases
  them all at once (their keys now name an incarnation that is over).
- `config` = {"partitions"}: replicas that disagree on the count refuse to start.

What holds:

- Fencing: two replicas never both count one partition held. A replica counts its partitions held
  (`held`, `epoch`, `owned`) until s + TRUSTED_SHARE * L, where s is when it sent the last member write
  the server confirmed; past that, `held()` is False and a timer calls `on_lost`, even if NATS never
  answered. That write was stored after s, so the key lives until T after that on the server's clock.
  Another replica claims the partition only once the holder's incarnation is over (the expiry marker, the
  deletion by `close()`, or a read from the stream's leader, made after the owner value was seen, that
  finds the key gone or another incarnation's), or once the holder released it, which it does after it
  stopped counting it held. It never concludes that from a key it has not seen yet. Claims of one
  partition follow one another through compare-and-set, each with a higher epoch.
- Clocks. Nothing is assumed of replicas' clocks relative to each other. What is assumed: while
  TRUSTED_SHARE * L passes on the holder's monotonic clock, the clock that stamps and expires the member
  key advances less than T. That clock is the NATS server's wall clock; in a cluster it is that of every
  node that may lead the bucket's stream. So the margin of at least L/6 must cover the rate difference,
  forward steps of the server's clock, and the skew between NATS nodes. The holder's monotonic clock must
  not stop while time passes, as it does when a host or VM is suspended. `on_lost` runs late when the
  event loop is blocked; `held()` reads the clock. So check `held()`, and carry the epoch as a fencing
  token, before anything with effects.
- Takeover: a replica that dies or is cut off without releasing is over when its member key expires:
  T after its last write was stored (no later than its death), plus the server's expiry delay (about
  0.25 s measured). Its partitions are claimed by the live replicas that win them when the expiry marker
  reaches their watch, each with one compare-and-set round trip. So from the death, the bound is
  T + expiry delay + one round trip. A watch that missed the marker (it resumed after the marker's own
  60 s had passed) re-reads a member silent for T + L/3 + 1 s at its next pass (within L/3): the bound
  grows by at most 2 L/3 + 1 s.
- Rebalancing: when a member joins, only the partitions it wins move (nothing moves between the others),
  each once its holder's `on_releasing` returned; `close()` hands everything over at once.
- Outages: the loops retry with `Backoff` and report to a `StoreAvailability`. An outage that ends before
  TRUSTED_SHARE * L has passed since the last confirmed round began loses nothing (the same partitions,
  the same epochs). A longer one loses them all; they come back with new epochs once a renewal succeeds
  (if the outage was shorter than T) or the replica has joined again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.js.api import KeyValueConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from worker_abstraction.stores.availability import Backoff, StoreAvailability
from worker_abstraction.stores.jetstream.connection import NATS_ERRORS, NatsStoreError, NatsUnavailableError
from worker_abstraction.stores.jetstream.partition_keys import (
    Owner,
    assign,
    encode_name,
    owner_value,
    partition_of,
    preferred_owner,
)
from worker_abstraction.stores.jetstream.partition_membership import TRUSTED_SHARE, PartitionMembership
from worker_abstraction.stores.jetstream.partition_view import (
    _MARKER_TTL_SECONDS,
    _MEMBER,
    _OWNER,
    PartitionOptions,
    _Hold,
    _Member,
)

logger = logging.getLogger(__name__)

__all__ = ["TRUSTED_SHARE", "PartitionLeases", "PartitionOptions", "assign", "partition_of", "preferred_owner"]


class PartitionLeases(PartitionMembership):
    """This replica's share of the partitions; open it with `PartitionLeases.open`.

    Callbacks, called on the event loop; one that raises is logged and never stops the keeper:
        on_gained: `(partition, epoch)` once this replica holds the partition (epoch: its fencing token).
        on_lost: `(partition, reason)` once it no longer does (released, closed, lapsed or taken).
        on_releasing: awaited with `partition` before a partition this replica holds is given up on purpose
            (to rebalance, or at `close()`): stop its work first. Not called when a lease lapses.
    """

    def __init__(
        self,
        js: JetStreamContext,
        kv: KeyValue,
        replica: str,
        options: PartitionOptions,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        availability: StoreAvailability | None = None,
    ) -> None:
        self.replica = replica
        self.options = options
        self.availability = availability or StoreAvailability(f"NATS (the partition leases, {options.bucket})")
        self.on_gained: list[Callable[[int, int], None]] = []
        self.on_lost: list[Callable[[int, str], None]] = []
        self.on_releasing: list[Callable[[int], Awaitable[None]]] = []
        self._js, self._kv = js, kv
        self._subject_prefix = f"$KV.{options.bucket}."
        self._stream = f"KV_{options.bucket}"
        self._sleep = sleep  # how the membership keeper waits between rounds (a test may hold it up)
        self._interval = options.lease_seconds / 3
        self._ttl = max(1, math.ceil(options.lease_seconds))
        self._member_key = _MEMBER + encode_name(replica)
        self._incarnation: str | None = None  # set while this replica is a member
        self._joining: str | None = None  # the incarnation of a create whose answer may have been lost
        self._member_revision = 0
        self._held_until = -math.inf  # (time.monotonic()) the held partitions count as held until then
        self._held: dict[int, _Hold] = {}
        self._members: dict[str, _Member] = {}
        self._owners: dict[int, Owner] = {}
        self._dead: set[str] = set()  # incarnations known to be over
        self._share: tuple[frozenset[str], set[int]] = (frozenset(), set())  # (members, what this one wins)
        self._synced = asyncio.Event()
        self._dirty = asyncio.Event()  # something changed: balance again
        self._pass = asyncio.Lock()
        self._lapse: asyncio.TimerHandle | None = None
        self._watching: asyncio.Task[None] | None = None
        self._keeping: list[asyncio.Task[None]] = []  # the membership keeper, the balancer
        self._closing = False
        self._waiting_logged = False

    @classmethod
    async def open(
        cls,
        client: Client,
        replica: str,
        options: PartitionOptions | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        availability: StoreAvailability | None = None,
    ) -> PartitionLeases:
        """Create the bucket if missing, read it, and start keeping this replica's lease and share.

        Partitions come later, through `on_gained`: append the callbacks before awaiting anything else.
        `sleep` is how the membership keeper waits between its rounds (a test holds it up to stall it).

        Raises:
            NatsStoreError: bad options, or a bucket made otherwise or for another partition count.
            NatsUnavailableError: NATS did not answer.
        """
        options = options or PartitionOptions()
        _check(replica, options)
        js = client.jetstream(timeout=_answer_timeout(options))
        try:
            try:
                kv = await js.key_value(options.bucket)
            except BucketNotFoundError:
                config = KeyValueConfig(
                    bucket=options.bucket, history=1, limit_marker_ttl=_MARKER_TTL_SECONDS, replicas=options.replicas
                )
                kv = await js.create_key_value(config)
            _check_bucket(options.bucket, await kv.status())
            leases = cls(js, kv, replica, options, sleep=sleep, availability=availability)
            await leases._agree_on_count()
            watcher = await kv.watchall()
        except NatsStoreError:
            raise
        except NATS_ERRORS as error:
            raise NatsUnavailableError(f"cannot open the partition bucket {options.bucket!r}: {error!r}") from error
        leases._watching = asyncio.create_task(leases._watch(watcher), name="partitions-watch")
        try:
            async with asyncio.timeout(max(10.0, options.lease_seconds)):
                await leases._synced.wait()
        except TimeoutError:
            await leases.close()
            raise NatsUnavailableError(f"the partition bucket {options.bucket!r} was not read in time") from None
        leases._keeping = [
            asyncio.create_task(leases._keep_membership(), name="partitions-membership"),
            asyncio.create_task(leases._keep_balance(), name="partitions-balance"),
        ]
        return leases

    def held(self, partition: int) -> bool:
        """Whether this replica holds `partition` now (its lease confirmed recently enough)."""
        return partition in self._held and time.monotonic() < self._held_until

    def epoch(self, partition: int) -> int | None:
        """The epoch under which this replica holds `partition`, or None if it does not."""
        hold = self._held.get(partition)
        return hold.epoch if hold is not None and time.monotonic() < self._held_until else None

    def owned(self) -> dict[int, int]:
        """Every partition this replica holds now, with its epoch."""
        if time.monotonic() >= self._held_until:
            return {}
        return {partition: hold.epoch for partition, hold in sorted(self._held.items())}

    @property
    def held_until(self) -> float:
        """(time.monotonic()) when the partitions held now stop counting as held unless the lease is renewed."""
        return self._held_until

    @property
    def members(self) -> frozenset[str]:
        """The replicas this one counts as live (itself included while its lease is confirmed)."""
        trusted = self._incarnation is not None and time.monotonic() < self._held_until
        return frozenset(self._live_names() | ({self.replica} if trusted else set()))

    async def close(self) -> None:
        """Give every held partition up (after `on_releasing`), leave the members, stop every task.

        Others take the partitions over at once; if NATS does not answer, when the member key expires.
        The client stays open.
        """
        if self._closing:
            return
        self._closing = True
        self._dirty.set()
        async with self._pass:  # a balancing pass under way ends first
            held = sorted(self._held)
            await asyncio.gather(*(self._releasing(partition) for partition in held))
            for partition in held:
                self._drop(partition, "closed")
        for task in reversed(self._keeping):
            await _cancel(task)
        incarnation, revision = self._incarnation, self._member_revision
        self._incarnation, self._held_until = None, -math.inf  # (its own watch then sees the deletion calmly)
        if incarnation is not None:
            try:
                await self._write(self._member_key, b"", last=revision, ttl=_MARKER_TTL_SECONDS, purge=True)
            except NatsUnavailableError as error:
                logger.warning("partition leases: %s left without deleting its member key: %s", self.replica, error)
        if self._lapse is not None:
            self._lapse.cancel()
        if self._watching is not None:
            await _cancel(self._watching)

    # -- the share: owner keys ----------------------------------------------------------------------------

    async def _keep_balance(self) -> None:
        backoff = Backoff(self._interval / 8, self._interval / 2)
        wait = self._interval
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._dirty.wait()
            self._dirty.clear()
            wait = self._interval
            try:
                async with self._pass:
                    if self._closing:
                        return
                    await self._balance()
            except NatsUnavailableError as error:
                self.availability.failed(error)
                wait = backoff.pause()
            except Exception:  # the keeper itself never stops
                logger.exception("partition leases: balancing the partitions of %s failed", self.replica)
                wait = backoff.pause()
            else:
                backoff.reset()

    async def _balance(self) -> None:
        """Claim what this replica wins and may take; release what it holds (or its keys name) and does not win."""
        self._expire()  # (its timer may be late)
        await self._recheck_silent(time.monotonic())
        incarnation = self._incarnation
        wins = self._wins()
        wanted = wins if incarnation is not None and time.monotonic() < self._held_until else set()
        releasing = [n for n in sorted(self._held) if n not in wanted]
        strays = [  # keys naming this incarnation that it does not hold: others would wait for them forever
            n
            for n, owner in sorted(self._owners.items())
            if incarnation is not None and owner.incarnation == incarnation and n not in self._held and n not in wins
        ]
        candidates = [n for n in sorted(wanted) if n not in self._held]
        await self._resolve([self._owners[n] for n in candidates if n in self._owners])
        claims = [n for n in candidates if self._claimable(n, incarnation)]
        if incarnation is not None and claims:
            await self._claim(claims, incarnation)
        if releasing or strays:
            await self._release(releasing, strays)

    def _wins(self) -> set[int]:
        """The partitions this replica wins among the live members (itself included)."""
        members = frozenset(self._live_names() | {self.replica})
        if self._share[0] != members:
            share = {n for n in range(self.options.partitions) if preferred_owner(n, members) == self.replica}
            self._share = (members, share)
        return self._share[1]

    def _claimable(self, partition: int, incarnation: str | None) -> bool:
        owner = self._owners.get(partition)
        if owner is None or not owner.holder or owner.incarnation == incarnation:
            return True
        return self._alive(owner) is False

    async def _claim(self, partitions: list[int], incarnation: str) -> None:
        writes = []
        for n in partitions:
            previous = self._owners.get(n)
            epoch = (previous.epoch if previous is not None else 0) + 1
            writes.append((n, epoch, previous.revision if previous is not None else 0))
        results = await asyncio.gather(
            *(
                self._write(_OWNER + str(n), owner_value(self.replica, incarnation, epoch), last=last, ttl=None)
                for n, epoch, last in writes
            ),
            return_exceptions=True,
        )
        failure: BaseException | None = None
        gained = []
        for (n, epoch, _), result in zip(writes, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            if result is None:
                continue  # it changed first: the watch brings the new value
            self._apply_owner(n, Owner(self.replica, incarnation, epoch, result))
            current = self._owners[n]
            trusted = time.monotonic() < self._held_until
            if self._incarnation == incarnation and trusted and current.revision == result and n not in self._held:
                self._held[n] = _Hold(epoch, result)
                gained.append(n)
                self._tell(self.on_gained, n, epoch)
        if gained:
            logger.info("partition leases: %s holds %d more partitions: %s", self.replica, len(gained), gained)
        if failure is not None:
            raise failure

    async def _release(self, partitions: list[int], strays: list[int]) -> None:
        await asyncio.gather(*(self._releasing(n) for n in partitions))
        writes = []
        for n in partitions:
            hold = self._held.get(n)
            if hold is not None:  # (not lapsed or taken meanwhile)
                self._drop(n, "released: another replica wins it")
                writes.append((n, hold.epoch, hold.revision))
        writes.extend((n, self._owners[n].epoch, self._owners[n].revision) for n in strays)
        if writes:
            logger.info("partition leases: %s releases partitions %s", self.replica, [n for n, _, _ in writes])
        results = await asyncio.gather(
            *(
                self._write(_OWNER + str(n), owner_value("", "", epoch), last=last, ttl=None)
                for n, epoch, last in writes
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _releasing(self, partition: int) -> None:
        for hook in list(self.on_releasing):
            try:
                await hook(partition)
            except Exception:
                logger.exception("partition leases: on_releasing(%d) failed; releasing it anyway", partition)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _check(replica: str, options: PartitionOptions) -> None:
    problems = [
        problem
        for problem, wrong in (
            ("replica must be a non-empty name", not replica),
            (f"partitions must be at least 1, not {options.partitions!r}", options.partitions < 1),
            (f"lease_seconds must be at least 1, not {options.lease_seconds!r}", not options.lease_seconds >= 1),
            (f"replicas must be 1 to 5, not {options.replicas!r}", not 1 <= options.replicas <= 5),
        )
        if wrong
    ]
    if problems:
        raise NatsStoreError("partition options: " + "; ".join(problems))


def _check_bucket(bucket: str, status: KeyValue.BucketStatus) -> None:
    """Refuse a bucket made by something else: without per-message TTL or expiry markers, no lease ends."""
    config = status.stream_info.config
    if not config.allow_msg_ttl or not config.subject_delete_marker_ttl or status.history != 1:
        raise NatsStoreError(
            f"the NATS bucket {bucket!r} exists without history 1, per-message TTL (allow_msg_ttl) or expiry "
            "markers (subject_delete_marker_ttl); delete it (nats kv del) and it is made again"
        )


def _answer_timeout(options: PartitionOptions) -> float:
    # Well within a renewal interval's reach of the trusted share: a round that waits this long still leaves
    # time for a retry before the partitions lapse.
    return min(5.0, max(0.5, options.lease_seconds / 4))
