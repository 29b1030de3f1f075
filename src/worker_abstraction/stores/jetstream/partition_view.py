"""The partition bucket as one replica sees it: its options, its KV reads and writes, the watch that keeps
a view of the member and owner keys, which incarnations are live or over, and the partitions held.

`PartitionView` is the base of `PartitionLeases` (`partitions.py`, which describes the bucket's keys and
what holds); `PartitionLeases.__init__` sets the state declared here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from nats.js.kv import KeyValue

from worker_abstraction.stores.availability import StoreAvailability
from worker_abstraction.stores.jetstream.connection import (
    NATS_ERRORS,
    WRONG_LAST_SEQUENCE,
    NatsStoreError,
    NatsUnavailableError,
)
from worker_abstraction.stores.jetstream.partition_keys import (
    Owner,
    decode_name,
    dump,
    encode_name,
    loads,
    member_incarnation,
    owner_of,
    partition_number,
)
from worker_abstraction.stores.jetstream.scan import delivered

logger = logging.getLogger("worker_abstraction.stores.jetstream.partitions")  # (the leases keep one logger)

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


class PartitionView:
    """The state of one replica's partition leases, and how it reads, writes and watches the bucket."""

    replica: str
    options: PartitionOptions
    availability: StoreAvailability
    on_gained: list[Callable[[int, int], None]]
    on_lost: list[Callable[[int, str], None]]
    on_releasing: list[Callable[[int], Awaitable[None]]]
    _js: JetStreamContext
    _kv: KeyValue
    _subject_prefix: str
    _stream: str
    _interval: float
    _ttl: int
    _incarnation: str | None
    _member_revision: int
    _held_until: float
    _held: dict[int, _Hold]
    _members: dict[str, _Member]
    _owners: dict[int, Owner]
    _dead: set[str]
    _synced: asyncio.Event
    _dirty: asyncio.Event

    def _leave(self, reason: str) -> None:
        """End this replica's membership (the membership keeper's part: `PartitionMembership._leave`)."""
        raise NotImplementedError

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


def _unavailable(error: Exception) -> NatsUnavailableError:
    return NatsUnavailableError(f"the partition leases' NATS bucket failed: {error!r}")
