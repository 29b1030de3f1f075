"""Keeping one replica's lease: its member key in the partition bucket, joined, renewed every L/3 by
compare-and-set, and trusted for `TRUSTED_SHARE` of L after a confirmed renewal (see `partitions.py`).

`PartitionMembership` sits between `PartitionView` and `PartitionLeases`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable

from worker_abstraction.stores.availability import Backoff, raise_if_cancelled
from worker_abstraction.stores.jetstream.connection import NatsUnavailableError
from worker_abstraction.stores.jetstream.partition_keys import dump, member_incarnation
from worker_abstraction.stores.jetstream.partition_view import PartitionView

logger = logging.getLogger("worker_abstraction.stores.jetstream.partitions")  # (the leases keep one logger)

TRUSTED_SHARE = 5 / 6  # of lease_seconds from a confirmed renewal: how long partitions count as held


class PartitionMembership(PartitionView):
    """The membership keeper: this replica's member key, and how long its partitions count as held."""

    _sleep: Callable[[float], Awaitable[None]]
    _member_key: str
    _joining: str | None
    _lapse: asyncio.TimerHandle | None
    _waiting_logged: bool

    # -- the lease: the member key ------------------------------------------------------------------------

    async def _keep_membership(self) -> None:
        backoff = Backoff(self._interval / 8, self._interval / 2)
        delay = 0.0
        while True:
            raise_if_cancelled()  # (a NATS call may have swallowed the cancel: closing waits for this loop)
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
