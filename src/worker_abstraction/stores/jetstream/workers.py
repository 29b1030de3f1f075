"""JetStreamWorkerStore: the registry's workers in a JetStream KV bucket, read from a cache a KV watch keeps current.

One key per worker (its id, base64url), one value per key (history 1): a one-byte operation (R registered,
H heartbeat, S suspect), the owner (the registering principal: two bytes of length, then UTF-8) and the
worker as the contract's WorkerInfo message, live fields included. Every
write but a registration is a compare-and-set on the key's revision, so a stale SUSPECT verdict never
overwrites a fresh heartbeat, and of two replicas evicting one worker only one succeeds. Every value
carries a per-message TTL, so a worker whose every registry died still disappears from the bucket; it is
the registry's TTL plus an outage grace, so that the keys of workers that kept heartbeating do not vanish
while NATS cannot be written for a while (a node died: see `registry.service` for what holds). A
removal is a purge whose body says why (E evicted, D deregistered); the server's own expiry marker (the
bucket has `limit_marker_ttl`) reads as an eviction.

Reads (`get`, `all`, `find_by_address`, `expired`) are served from memory; a KV watch applies every
replica's writes in stream order and reports each change to the listeners (the registry's event hub).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError
from nats.js.api import KeyValueConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from worker_abstraction import _convert
from worker_abstraction.errors import InvalidWorkerInfoError
from worker_abstraction.stores.base import WorkerChange, WorkerRecord
from worker_abstraction.stores.jetstream.connection import (
    NATS_ERRORS,
    WRONG_LAST_SEQUENCE,
    NatsOptions,
    NatsStoreError,
    NatsUnavailableError,
    close,
    connect,
)
from worker_abstraction.stores.jetstream.scan import delivered
from worker_abstraction.types import LoadReport, WorkerState

logger = logging.getLogger(__name__)

DEFAULT_BUCKET = "wa_workers"
_REGISTERED, _HEARTBEAT, _SUSPECT = b"R", b"H", b"S"
_EVICTED, _LEFT = b"E", b"D"
_CAS_ATTEMPTS = 5
_MARKER_TTL_SECONDS = 60  # how long removal markers stay in the bucket (watchers see them at once)
_MAX_TOMBSTONES = 10_000
_MAX_ID_CHARS = 4096  # longer ids (a hostile heartbeat) are not looked up in the bucket
_PROBE_TIMEOUT_SECONDS = 2.0
ANSWER_TIMEOUT_SECONDS = 2.0  # a read or a write of the bucket (see `answer_timeout_seconds`)
MIN_OUTAGE_GRACE_SECONDS = 30.0  # the least a key outlives the registry's TTL (see `outage_grace_seconds`)


class JetStreamWorkerStore:
    """A `SharedWorkerStore` on a JetStream KV bucket; open it with `JetStreamWorkerStore.open`.

    Args:
        key_ttl_seconds: the registry's TTL. A value not rewritten for this long plus `outage_grace_seconds`
            expires in the bucket (whole seconds, at least 1): the backstop for a worker whose every
            registry died.
        outage_grace_seconds: how much longer than the TTL a key lives in the bucket, so that the keys of
            workers that kept heartbeating survive a store outage that long (less a heartbeat interval):
            their registries write them again once they can. Default: the TTL, and at least
            `MIN_OUTAGE_GRACE_SECONDS`.
        answer_timeout_seconds: how long a read or a write waits for NATS before it says NATS does not
            answer: well below a worker's call timeout, so that a heartbeat served during an outage is
            answered (and remembered) rather than left to time out.
    """

    def __init__(
        self,
        client: Client,
        kv: KeyValue,
        bucket: str,
        *,
        key_ttl_seconds: float,
        outage_grace_seconds: float | None = None,
        answer_timeout_seconds: float = ANSWER_TIMEOUT_SECONDS,
    ) -> None:
        self._client = client
        self._js: JetStreamContext = client.jetstream(timeout=answer_timeout_seconds)
        self._kv = kv
        self._prefix = f"$KV.{bucket}."
        if outage_grace_seconds is None:
            outage_grace_seconds = max(key_ttl_seconds, MIN_OUTAGE_GRACE_SECONDS)
        self._key_ttl = max(1, math.ceil(key_ttl_seconds + outage_grace_seconds))
        self._records: dict[str, WorkerRecord] = {}
        self._revisions: dict[str, int] = {}
        self._tombstones: dict[str, int] = {}  # removed id -> revision of its removal, until the watch passes it
        self._by_address: dict[str, set[str]] = {}
        self._listeners: list[Callable[[WorkerChange], None]] = []
        self._watched = 0  # the last revision the watch delivered
        self._synced = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        options: NatsOptions,
        *,
        key_ttl_seconds: float,
        outage_grace_seconds: float | None = None,
        answer_timeout_seconds: float = ANSWER_TIMEOUT_SECONDS,
        bucket: str = DEFAULT_BUCKET,
        sync_timeout_seconds: float = 10.0,
    ) -> JetStreamWorkerStore:
        """Connect, create the bucket if it is missing, and load every worker it holds.

        Raises:
            NatsStoreError: NATS is unreachable or too old, or the bucket cannot be created or read.
        """
        client = await connect(options)
        try:
            js = client.jetstream()
            try:
                kv = await js.key_value(bucket)
            except BucketNotFoundError:
                config = KeyValueConfig(
                    bucket=bucket, history=1, limit_marker_ttl=_MARKER_TTL_SECONDS, replicas=options.replicas
                )
                kv = await js.create_key_value(config)
            _check_bucket(bucket, await kv.status())
            kv = await client.jetstream(timeout=answer_timeout_seconds).key_value(bucket)  # (made, it answers soon)
            store = cls(
                client,
                kv,
                bucket,
                key_ttl_seconds=key_ttl_seconds,
                outage_grace_seconds=outage_grace_seconds,
                answer_timeout_seconds=answer_timeout_seconds,
            )
            await store._start(sync_timeout_seconds)
        except NatsStoreError:
            await client.close()
            raise
        except Exception as error:
            await client.close()
            raise NatsStoreError(f"cannot open the NATS bucket {bucket!r}: {error!r}") from error
        return store

    async def _start(self, sync_timeout_seconds: float) -> None:
        watcher = await self._kv.watchall()
        self._watch_task = asyncio.create_task(self._watch(watcher), name="jetstream-workers-watch")
        try:
            async with asyncio.timeout(sync_timeout_seconds):
                await self._synced.wait()
        except TimeoutError:
            await self.aclose()
            raise NatsStoreError(f"the NATS bucket was not read within {sync_timeout_seconds:g}s") from None

    async def aclose(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None
        await close(self._client)

    def listen(self, listener: Callable[[WorkerChange], None]) -> None:
        self._listeners.append(listener)

    async def probe(self, *, timeout_seconds: float = _PROBE_TIMEOUT_SECONDS) -> None:
        """Return once the bucket's stream answers (its leader reports on it) within `timeout_seconds`.

        Raises:
            NatsUnavailableError: it did not (NATS unreachable, no leader, no answer in time).
        """
        try:
            async with asyncio.timeout(timeout_seconds):
                await self._kv.status()
        except NATS_ERRORS as error:
            raise _unavailable(error) from error

    async def put(self, record: WorkerRecord) -> WorkerRecord | None:
        worker_id = record.info.worker_id
        previous = await self.get(worker_id)
        revision = await self._publish(worker_id, _REGISTERED + _encode(record), last=None, ttl=self._key_ttl)
        assert revision is not None  # an unconditional write cannot fail its compare-and-set
        self._apply(worker_id, record, revision, registered=True)
        return previous

    async def get(self, worker_id: str) -> WorkerRecord | None:
        record = self._records.get(worker_id)
        if record is None and worker_id not in self._tombstones:
            # Registered through another replica a moment ago, before our watch delivered it.
            record = await self._fetch(worker_id)
        return record

    async def remove(
        self, worker_id: str, *, reason: str = "", evicted: bool = False, seen_before: float | None = None
    ) -> WorkerRecord | None:
        body = (_EVICTED if evicted else _LEFT) + reason.encode()
        record = await self.get(worker_id)
        for _ in range(_CAS_ATTEMPTS):
            if record is None or (seen_before is not None and record.last_seen >= seen_before):
                return None
            last = self._revisions.get(worker_id, 0)
            revision = await self._publish(worker_id, body, last=last, ttl=_MARKER_TTL_SECONDS, purge=True)
            if revision is not None:
                self._apply(worker_id, None, revision, reason=reason, evicted=evicted)
                return record
            record = await self._fetch(worker_id)  # written meanwhile: look again
        return None

    async def touch(
        self, worker_id: str, *, load: int, now: float, report: LoadReport | None = None
    ) -> WorkerRecord | None:
        record = await self.get(worker_id)
        for _ in range(_CAS_ATTEMPTS):
            if record is None:
                return None
            updated = replace(
                record, last_seen=now, load=load, report=report, state=WorkerState.ACTIVE, state_reason=""
            )
            last = self._revisions.get(worker_id, 0)
            revision = await self._publish(worker_id, _HEARTBEAT + _encode(updated), last=last, ttl=self._key_ttl)
            if revision is not None:
                self._apply(worker_id, updated, revision)
                return updated
            record = await self._fetch(worker_id)
        return None

    async def mark_suspect(self, worker_id: str, *, reason: str, seen_before: float) -> WorkerRecord | None:
        record = self._records.get(worker_id)
        if record is None or record.state is not WorkerState.ACTIVE or record.last_seen >= seen_before:
            return None
        updated = replace(record, state=WorkerState.SUSPECT, state_reason=reason)
        # The verdict keeps the expiry of the heartbeat it judges: it must not prolong a silent worker's life.
        ttl = max(1, math.ceil(record.last_seen + self._key_ttl - time.time()))
        revision = await self._publish(
            worker_id, _SUSPECT + _encode(updated), last=self._revisions.get(worker_id, 0), ttl=ttl
        )
        if revision is None:  # a heartbeat (or another replica's verdict) came first
            return None
        self._apply(worker_id, updated, revision)
        return updated

    async def all(self) -> list[WorkerRecord]:
        return list(self._records.values())

    async def find_by_address(self, address: str) -> list[WorkerRecord]:
        return [self._records[i] for i in self._by_address.get(address, ())]

    async def expired(self, before: float) -> list[WorkerRecord]:
        return [r for r in self._records.values() if r.last_seen < before]

    async def _publish(
        self, worker_id: str, payload: bytes, *, last: int | None, ttl: int, purge: bool = False
    ) -> int | None:
        """Write one value; its revision, or None when `last` is no longer the key's revision."""
        headers: dict[str, str] = {}
        if last is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
        if purge:
            headers["KV-Operation"] = "PURGE"
            headers["Nats-Rollup"] = "sub"
        try:
            ack = await self._js.publish(self._prefix + _key(worker_id), payload, headers=headers, msg_ttl=ttl)
        except MaxPayloadError as error:
            limit = self._client.max_payload
            raise InvalidWorkerInfoError(
                [f"the worker's description takes {len(payload)} bytes, over the NATS server's {limit} (max_payload)"]
            ) from error
        except APIError as error:
            if error.err_code in WRONG_LAST_SEQUENCE:
                return None
            raise _unavailable(error) from error
        except (NatsError, TimeoutError) as error:  # disconnected, or no answer in time
            raise _unavailable(error) from error
        return int(ack.seq)

    async def _fetch(self, worker_id: str) -> WorkerRecord | None:
        """Read one key from the bucket itself and bring the cache up to it."""
        if not worker_id or len(worker_id) > _MAX_ID_CHARS:  # no such key could have been written
            return None
        try:
            entry = await self._kv.get(_key(worker_id))
        except KeyNotFoundError:
            return None  # gone (the watch reports the removal), or never there
        except (NatsError, TimeoutError) as error:
            raise _unavailable(error) from error
        if entry.value is None or entry.revision is None:
            return None
        op, record = _decode(entry.value)
        if record is not None:
            self._apply(worker_id, record, entry.revision, registered=op == _REGISTERED)
        return self._records.get(worker_id)

    async def _watch(self, watcher: KeyValue.KeyWatcher) -> None:
        received, initial = 0, None
        try:
            async for entry in watcher:
                if entry is None:  # everything the bucket held has been delivered (so nats-py says)
                    initial = await delivered(watcher)
                    if received >= initial:
                        self._synced.set()
                    continue
                received += 1
                try:
                    self._on_entry(entry)
                except Exception:  # one unreadable value must not stop the cache
                    logger.exception("skipping an unreadable worker entry %r", entry.key)
                if initial is not None and received >= initial:
                    self._synced.set()
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _on_entry(self, entry: KeyValue.Entry) -> None:
        if entry.revision is None:
            return
        self._watched = entry.revision
        worker_id = _worker_id(entry.key)
        if worker_id is None:
            logger.warning("ignoring key %r in the workers bucket: not written by a registry", entry.key)
            return
        if entry.operation in ("DEL", "PURGE"):
            body = entry.value or b""
            if body[:1] in (_EVICTED, _LEFT):
                reason, evicted = body[1:].decode(errors="replace"), body[:1] == _EVICTED
            else:  # the server's expiry marker: every registry stayed silent for the key's TTL
                reason, evicted = f"expired: no registry heard from it for {self._key_ttl}s", True
            self._apply(worker_id, None, entry.revision, reason=reason, evicted=evicted)
            return
        op, record = _decode(entry.value or b"")
        if record is None or record.info.worker_id != worker_id:
            logger.warning("ignoring an unreadable value of worker %r in the workers bucket", worker_id)
            return
        self._apply(worker_id, record, entry.revision, registered=op == _REGISTERED)

    def _apply(
        self,
        worker_id: str,
        record: WorkerRecord | None,
        revision: int,
        *,
        registered: bool = False,
        reason: str = "",
        evicted: bool = False,
    ) -> None:
        """Bring the cache to `revision` of a worker (unless it holds a later one) and report the change."""
        if revision <= max(self._revisions.get(worker_id, 0), self._tombstones.get(worker_id, 0)):
            return
        previous = self._records.get(worker_id)
        if previous is not None:
            self._unindex(previous)
        if record is None:
            self._records.pop(worker_id, None)
            self._revisions.pop(worker_id, None)
            self._tombstones[worker_id] = revision
            if len(self._tombstones) > _MAX_TOMBSTONES:
                self._tombstones = {k: v for k, v in self._tombstones.items() if v > self._watched}
        else:
            self._records[worker_id] = record
            self._revisions[worker_id] = revision
            self._tombstones.pop(worker_id, None)
            self._by_address.setdefault(record.info.address, set()).add(worker_id)
        if previous is None and record is None:
            return
        change = WorkerChange(previous, record, registered=registered, reason=reason, evicted=evicted)
        for listener in self._listeners:
            listener(change)

    def _unindex(self, record: WorkerRecord) -> None:
        ids = self._by_address.get(record.info.address)
        if ids is not None:
            ids.discard(record.info.worker_id)
            if not ids:
                del self._by_address[record.info.address]


def _check_bucket(bucket: str, status: KeyValue.BucketStatus) -> None:
    """Refuse a bucket made by something else: without per-message TTL or marker TTL, workers never expire."""
    config = status.stream_info.config
    if not config.allow_msg_ttl or not config.subject_delete_marker_ttl:
        raise NatsStoreError(
            f"the NATS bucket {bucket!r} exists without per-message TTL (allow_msg_ttl) or expiry markers "
            "(subject_delete_marker_ttl); delete it (nats kv del) and the registry recreates it"
        )


def _unavailable(error: Exception) -> NatsUnavailableError:
    # Answered UNAVAILABLE: the caller retries (its heartbeat loop does) rather than reading it as a bug.
    return NatsUnavailableError(f"the registry's NATS store failed: {error!r}")


def _key(worker_id: str) -> str:
    # KV keys allow [-/_=.a-zA-Z0-9]; worker ids may hold anything, so they are base64url-encoded.
    return base64.urlsafe_b64encode(worker_id.encode()).decode().rstrip("=")


def _worker_id(key: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)).decode()
    except ValueError:
        return None


def _encode(record: WorkerRecord) -> bytes:
    owner = record.owner.encode()[:0xFFFF]
    return len(owner).to_bytes(2, "big") + owner + _convert.worker_to_bytes(record.snapshot())


def _decode(value: bytes) -> tuple[bytes, WorkerRecord | None]:
    op = value[:1]
    if op not in (_REGISTERED, _HEARTBEAT, _SUSPECT):
        return op, None
    size = int.from_bytes(value[1:3], "big")
    try:
        owner = value[3 : 3 + size].decode()
        info = _convert.worker_from_bytes(value[3 + size :])
    except ValueError:  # UnicodeDecodeError is one
        return op, None
    if info.last_heartbeat is None:
        return op, None
    record = WorkerRecord(
        info=replace(
            info, last_heartbeat=None, current_load=0, load_report=None, state=WorkerState.ACTIVE, state_reason=""
        ),
        last_seen=info.last_heartbeat.timestamp(),
        load=info.current_load,
        report=info.load_report,
        state=info.state if info.state is WorkerState.SUSPECT else WorkerState.ACTIVE,
        state_reason=info.state_reason,
        owner=owner,
    )
    return op, record
