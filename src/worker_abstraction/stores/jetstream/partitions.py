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
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.js.api import KeyValueConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from worker_abstraction.stores.availability import Backoff, StoreAvailability
from worker_abstraction.stores.jetstream.connection import (
    NATS_ERRORS,
    WRONG_LAST_SEQUENCE,
    NatsStoreError,
    NatsUnavailableError,
)
from worker_abstraction.stores.jetstream.partition_keys import (
    Owner,
    assign,
    decode_name,
    dump,
    encode_name,
    loads,
    member_incarnation,
    owner_of,
    owner_value,
    partition_number,
    partition_of,
    preferred_owner,
)
from worker_abstraction.stores.jetstream.scan import delivered

logger = logging.getLogger(__name__)

__all__ = ["TRUSTED_SHARE", "PartitionLeases", "PartitionOptions", "assign", "partition_of", "preferred_owner"]

TRUSTED_SHARE = 5 / 6  # of lease_seconds from a confirmed renewal: how long partitions count as held
_MARKER_TTL_SECONDS = 60  # how long expiry and deletion markers stay (watchers see them at once)
_MEMBER, _OWNER, _CONFIG = "member.", "owner.", "config"
_MAX_DEAD = 10_000  # incarnations remembered as over, beyond those some key still names
_SILENCE_GRACE_SECONDS = 1.0  # beyond T + L/3: the server's expiry delay, before a silent member is re-read


@dataclass(frozen=True, slots=True)
class PartitionOptions:
    """How the partitions are shared.

    Args:
        partitions: how many partitions task ids hash to; every replica of one bucket uses the same count.
        lease_seconds: a replica's lease: it renews it every third of this, counts its partitions held for
            `TRUSTED_SHARE` of it after a confirmed renewal, and its member key outlives its last write by
            this, rounded up to whole seconds (at least 1).
        bucket: the KV bucket's name.
        replicas: copies of the bucket in a NATS cluster (1, or 3 for R3).
    """

    partitions: int = 32
    lease_seconds: float = 10.0
    bucket: str = "wa_partitions"
    replicas: int = 1


@dataclass(slots=True)
class _Member:
    incarnation: str | None  # None: its key is gone
    revision: int
    heard: float  # (time.monotonic()) when a write of it was last seen


@dataclass(frozen=True, slots=True)
class _Hold:
    epoch: int
    revision: int


@dataclass(frozen=True, slots=True)
class _Found:
    value: bytes | None  # None: no live value (absent, deleted or expired)
    revision: int  # 0 when absent


class PartitionLeases:
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

    # -- the lease: the member key ------------------------------------------------------------------------

    async def _keep_membership(self) -> None:
        backoff = Backoff(self._interval / 8, self._interval / 2)
        delay = 0.0
        while True:
            await self._sleep(delay)
            began = time.monotonic()
            try:
                await (self._renew(began) if self._incarnation is not None else self._join(began))
            except NatsUnavailableError as error:
                self.availability.failed(error)
                delay = backoff.pause()
                continue
            except Exception:  # the keeper itself never stops
                logger.exception("partition leases: a membership round of %s failed", self.replica)
                delay = backoff.pause()
                continue
            self.availability.answered()
            backoff.reset()
            delay = max(0.0, began + self._interval - time.monotonic())

    async def _join(self, began: float) -> None:
        incarnation = self._joining or secrets.token_hex(8)
        self._joining = incarnation
        value = dump({"replica": self.replica, "incarnation": incarnation})
        revision = await self._write(self._member_key, value, last=0, ttl=self._ttl)
        confirmed = revision is not None
        if revision is None:
            found = await self._read(self._member_key)
            if found.value is None:  # a marker of the previous incarnation is the key's last revision
                revision = await self._write(self._member_key, value, last=found.revision, ttl=self._ttl)
                confirmed = revision is not None
            elif member_incarnation(found.value, self.replica) == incarnation:
                revision = found.revision  # an earlier create landed though its answer was lost
            elif not self._waiting_logged:
                self._waiting_logged = True
                logger.info("partition leases: %s waits for its previous member key to expire", self.replica)
        if revision is None:
            return
        self._joining, self._waiting_logged = None, False
        self._incarnation, self._member_revision = incarnation, revision
        if confirmed:
            self._extend(began + TRUSTED_SHARE * self.options.lease_seconds)
        logger.info("partition leases: %s joined (incarnation %s)", self.replica, incarnation)
        self._dirty.set()

    async def _renew(self, began: float) -> None:
        incarnation = self._incarnation
        value = dump({"replica": self.replica, "incarnation": incarnation})
        for _ in range(2):
            revision = await self._write(self._member_key, value, last=self._member_revision, ttl=self._ttl)
            if self._incarnation != incarnation:
                return  # it left meanwhile
            if revision is not None:
                self._member_revision = revision
                self._extend(began + TRUSTED_SHARE * self.options.lease_seconds)
                return
            found = await self._read(self._member_key)
            if self._incarnation != incarnation:
                return
            if found.value is None or member_incarnation(found.value, self.replica) != incarnation:
                self._leave("its member key expired or was replaced")
                return
            # A write whose answer was lost (a round that timed out while the connection was down) landed
            # since: write again on it, in this round, which then counts from `began` as any other.
            self._member_revision = max(self._member_revision, found.revision)

    def _extend(self, until: float) -> None:
        if until <= self._held_until:
            return
        # A lease that lapsed before this renewal was confirmed (its timer not run yet) stays lapsed: its
        # partitions are dropped now and claimed again under new epochs, never revived under the old ones
        # (runs that saw them lapse have stopped, and their tasks must be taken on again).
        self._expire()
        self._held_until = until
        if self._lapse is not None:
            self._lapse.cancel()
        self._lapse = asyncio.get_running_loop().call_later(max(0.0, until - time.monotonic()), self._lapsed)

    def _lapsed(self) -> None:
        left = self._held_until - time.monotonic()
        self._lapse = asyncio.get_running_loop().call_later(left, self._lapsed) if left > 0 else None  # (early)
        self._expire()

    def _expire(self) -> None:
        """Drop every held partition once the lease is no longer trusted (the timer's work, or a late timer's)."""
        if self._held and time.monotonic() >= self._held_until:
            lease = TRUSTED_SHARE * self.options.lease_seconds
            self._drop_all(f"lapsed: no renewal of the lease confirmed within {lease:.1f}s")
            self._dirty.set()

    def _leave(self, reason: str) -> None:
        if self._held and time.monotonic() < self._held_until:
            logger.error(
                "partition leases: %s's member key is gone while it held partitions: clocks disagree", self.replica
            )
        logger.warning("partition leases: %s is no longer a member (%s); it joins again", self.replica, reason)
        if self._incarnation is not None:
            self._bury(self._incarnation)  # (over for good: ids are never reused)
        self._incarnation, self._member_revision, self._held_until = None, 0, -math.inf
        if self._lapse is not None:
            self._lapse.cancel()
            self._lapse = None
        self._drop_all(f"left the members: {reason}")
        self._dirty.set()

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

    def _drop(self, partition: int, reason: str) -> None:
        if self._held.pop(partition, None) is not None:
            self._tell(self.on_lost, partition, reason)

    def _drop_all(self, reason: str) -> None:
        if self._held:
            logger.warning("partition leases: %s lost %d partitions: %s", self.replica, len(self._held), reason)
        for partition in sorted(self._held):
            self._drop(partition, reason)

    def _tell(self, callbacks: list[Callable[[int, Any], None]], partition: int, detail: Any) -> None:
        for callback in list(callbacks):
            try:
                callback(partition, detail)
            except Exception:
                logger.exception("partition leases: a callback on partition %d failed", partition)

    # -- who is live ----------------------------------------------------------------------------------------

    def _live_names(self) -> set[str]:
        return {
            name for name, m in self._members.items() if m.incarnation is not None and m.incarnation not in self._dead
        }

    def _alive(self, owner: Owner) -> bool | None:
        """Whether the incarnation `owner` names is live: True, False (over for good) or None (not known yet)."""
        if owner.incarnation in self._dead:
            return False
        member = self._members.get(owner.holder)
        if member is None:
            return None
        if member.incarnation == owner.incarnation:
            return True
        if member.revision > owner.revision:  # the key changed after that incarnation wrote this owner value
            self._bury(owner.incarnation)
            return False
        return None

    async def _resolve(self, owners: list[Owner]) -> None:
        """Read the member keys of the holders not known live or over (what the server answers now is later
        than the owner values seen: a key gone or held by another incarnation means theirs is over)."""
        unknown = [o for o in owners if o.holder and self._alive(o) is None]
        names = sorted({o.holder for o in unknown})
        found = dict(
            zip(names, await asyncio.gather(*(self._read(_MEMBER + encode_name(n)) for n in names)), strict=True)
        )
        for owner in unknown:
            self._learn(owner.holder, found[owner.holder], about=owner.incarnation)

    async def _recheck_silent(self, now: float) -> None:
        """Read again the member keys not heard of for longer than they can live (a watch that missed a marker)."""
        silence = self._ttl + self._interval + _SILENCE_GRACE_SECONDS
        silent = [
            (name, m.incarnation)
            for name, m in self._members.items()
            if m.incarnation is not None and m.incarnation not in self._dead and now - m.heard > silence
        ]
        results = await asyncio.gather(*(self._read(_MEMBER + encode_name(name)) for name, _ in silent))
        for (name, incarnation), seen in zip(silent, results, strict=True):
            self._learn(name, seen, about=incarnation)

    def _learn(self, name: str, seen: _Found, *, about: str) -> None:
        """Apply the leader's answer about `name`'s member key, read after `about` was seen: any other answer
        (gone, or another incarnation) means `about` is over. (The watch may have delivered later revisions
        meanwhile: the view takes the answer only if it is not older.)"""
        incarnation = member_incarnation(seen.value, name) if seen.value is not None else None
        if incarnation != about:
            self._bury(about)
        self._apply_member(name, incarnation, seen.revision)
        member = self._members.get(name)
        if member is not None:
            member.heard = time.monotonic()
            if member.incarnation in self._dead:
                member.incarnation = None

    def _bury(self, incarnation: str) -> None:
        self._dead.add(incarnation)
        if len(self._dead) > _MAX_DEAD:
            named = {o.incarnation for o in self._owners.values()} | {m.incarnation for m in self._members.values()}
            self._dead &= named

    # -- the watch -------------------------------------------------------------------------------------------

    async def _watch(self, watcher: KeyValue.KeyWatcher) -> None:
        received, initial = 0, None
        try:
            async for entry in watcher:
                if entry is None:  # everything the bucket held has been delivered (so nats-py says: `delivered`)
                    initial = await delivered(watcher)
                    if received >= initial:
                        self._synced.set()
                        self._dirty.set()
                    continue
                received += 1
                try:
                    self._on_entry(entry)
                except Exception:  # one unreadable value must not stop the view
                    logger.exception("partition leases: skipping an unreadable entry %r", entry.key)
                if initial is not None and received >= initial and not self._synced.is_set():
                    self._synced.set()
                    self._dirty.set()
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _on_entry(self, entry: KeyValue.Entry) -> None:
        if entry.revision is None:
            return
        gone = entry.operation in ("DEL", "PURGE")
        if entry.key.startswith(_MEMBER):
            name = decode_name(entry.key[len(_MEMBER) :])
            incarnation = None if gone or name is None else member_incarnation(entry.value or b"", name)
            if name is None or (incarnation is None and not gone):
                logger.warning("partition leases: ignoring an unreadable member entry %r", entry.key)
                return
            self._apply_member(name, incarnation, entry.revision)
        elif entry.key.startswith(_OWNER):
            partition = partition_number(entry.key[len(_OWNER) :], self.options.partitions)
            previous = self._owners.get(partition) if partition is not None else None
            owner = owner_of(entry.value or b"", entry.revision) if not gone else None
            if gone:  # (deleted by hand: the epoch goes on from the last one seen)
                owner = Owner("", "", previous.epoch if previous is not None else 0, entry.revision)
            if partition is None or owner is None:
                logger.warning("partition leases: ignoring an unreadable owner entry %r", entry.key)
                return
            self._apply_owner(partition, owner)
        self._dirty.set()

    def _apply_member(self, name: str, incarnation: str | None, revision: int) -> None:
        previous = self._members.get(name)
        if previous is not None and revision <= previous.revision:
            return
        if previous is not None and previous.incarnation is not None and previous.incarnation != incarnation:
            self._bury(previous.incarnation)
        self._members[name] = _Member(incarnation, revision, time.monotonic())
        mine = self._incarnation
        if name == self.replica and mine is not None and incarnation != mine and revision > self._member_revision:
            self._leave("its member key expired" if incarnation is None else "another process took its name")

    def _apply_owner(self, partition: int, owner: Owner) -> None:
        previous = self._owners.get(partition)
        if previous is not None and owner.revision <= previous.revision:
            return
        self._owners[partition] = owner
        hold = self._held.get(partition)
        if hold is not None and owner.revision > hold.revision and owner.incarnation != self._incarnation:
            self._drop(partition, f"taken by {owner.holder!r}" if owner.holder else "released by another writer")

    # -- the bucket ------------------------------------------------------------------------------------------

    async def _agree_on_count(self) -> None:
        wanted = self.options.partitions
        for _ in range(3):
            found = await self._read(_CONFIG)
            if found.value is not None:
                count = loads(found.value).get("partitions")
                if count != wanted:
                    raise NatsStoreError(
                        f"the partition bucket {self.options.bucket!r} is shared into {count!r} partitions, not "
                        f"{wanted}: every replica must use one count (delete the bucket to change it)"
                    )
                return
            if await self._write(_CONFIG, dump({"partitions": wanted}), last=found.revision, ttl=None) is not None:
                return
        raise NatsUnavailableError(f"the partition count of {self.options.bucket!r} kept changing under this replica")

    async def _write(self, key: str, value: bytes, *, last: int, ttl: int | None, purge: bool = False) -> int | None:
        """Write one value if `last` is still the key's revision (0: none); its revision, or None if not."""
        headers = {"Nats-Expected-Last-Subject-Sequence": str(last)}
        if purge:
            headers["KV-Operation"] = "PURGE"
            headers["Nats-Rollup"] = "sub"
        try:
            ack = await self._js.publish(self._subject_prefix + key, value, headers=headers, msg_ttl=ttl)
        except APIError as error:
            if error.err_code in WRONG_LAST_SEQUENCE:
                return None
            raise _unavailable(error) from error
        except NATS_ERRORS as error:  # disconnected, or no answer in time
            raise _unavailable(error) from error
        return int(ack.seq)

    async def _read(self, key: str) -> _Found:
        """The key's last revision, from the stream's leader (a direct get may answer from a lagging copy)."""
        try:
            message = await self._js.get_msg(self._stream, subject=self._subject_prefix + key, direct=False)
        except NotFoundError:
            return _Found(None, 0)
        except NATS_ERRORS as error:
            raise _unavailable(error) from error
        headers = message.headers or {}
        revision = int(message.seq or 0)
        if headers.get("KV-Operation") in ("DEL", "PURGE") or "Nats-Marker-Reason" in headers:
            return _Found(None, revision)
        return _Found(message.data or b"", revision)


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


def _unavailable(error: Exception) -> NatsUnavailableError:
    return NatsUnavailableError(f"the partition leases' NATS bucket failed: {error!r}")
