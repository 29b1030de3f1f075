"""The task documents daemons share on NATS (`TaskDoc`, as JSON), and their shared dead letters.

A document is what a task is and how far it got: one KV key per task (`orchestrator.homes.nats`: the
partitioned home keeps them, and changes them only by compare-and-set). Its value is a JSON object (bytes
as base64): the submission as the contract's SubmitTaskRequest, the state (`queued`, `dispatched`,
`finished`), the daemon holding it, the worker and attempt it was last sent to, the attempt numbers reserved
(a daemon taking the task over numbers its attempts above them), the failures so far, a cancel asked for,
how often it was taken over, and once finished its TaskRecord and status.

`SharedLetters` reads what every daemon shares beside the documents: the dead letters (a KV bucket, the
contract's DeadLetterEntry per task) and the idempotency keys' holders (the key a digest of the idempotency
key, the value the task id that claimed it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from dataclasses import dataclass, fields
from typing import Any

import orjson
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError
from nats.js.kv import KV_OP, KV_PURGE, KeyValue

from worker_abstraction.stores.jetstream.connection import NatsStoreError, NatsUnavailableError
from worker_abstraction.stores.jetstream.pipeline import JetStreamWriter, kv_subject
from worker_abstraction.stores.jetstream.scan import is_deletion, last_values
from worker_abstraction.stores.jetstream.wire import Ack, WrongLastSequenceError

logger = logging.getLogger(__name__)

QUEUED, DISPATCHED, FINISHED = "queued", "dispatched", "finished"
_TAKEN_HEADERS = {KV_OP: KV_PURGE, "Nats-Rollup": "sub", "Nats-TTL": "1s"}  # (a dead letter taken: see its removal)
_BYTES_FIELDS = ("request", "record")


@dataclass(frozen=True, slots=True)
class TaskDoc:
    """A task as the daemons share it."""

    task_id: str
    request: bytes  # the serialized SubmitTaskRequest (id, owner and creation time filled in)
    capability: str
    accepted_at: float
    owner: str = ""  # the principal that submitted it
    idempotency_key: str = ""
    state: str = QUEUED
    holder: str = ""  # the daemon carrying it on now (empty: nobody has taken it yet)
    worker_id: str = ""
    worker_address: str = ""
    attempt: int = 0  # the attempt last sent
    dispatched_at: float = 0.0  # when it was sent (epoch seconds): a takeover keeps the attempt's start
    reserved: int = 0  # attempt numbers up to this one may have been sent
    failures: int = 0
    cancel_reason: str = ""
    record: bytes = b""  # the serialized TaskRecord once finished
    status: int = 0  # the final TaskStatus once finished
    takes: int = 0  # how often a daemon took it over from one that did not give it back
    released: bool = False  # its holder gave it back (stopping, or rebalancing): the next take is not counted
    # An operator's decision on a task waiting for approval, written by any daemon for its holder to carry out:
    # JSON [approved, decided by, reason] ("": none).
    decision: str = ""
    answers: str = ""  # the answers a slot-freeing wait was given so far (`exchanges.ANSWERS`)

    @property
    def finished(self) -> bool:
        return self.state == FINISHED


class StaleHolderError(NatsStoreError):
    """A change on behalf of a daemon that no longer holds the task (another took it over): refused."""

    def __init__(self, task_id: str, holder: str, now_held_by: str) -> None:
        super().__init__(f"task {task_id[:40]!r} is held by {now_held_by!r} now, not {holder!r}: change refused")
        self.task_id, self.holder, self.now_held_by = task_id, holder, now_held_by


class SharedLetters:
    """The dead letters every daemon keeps in one bucket, and the idempotency keys, claimed once across the
    daemons (written through `writer`)."""

    def __init__(
        self,
        js: JetStreamContext,
        keys: KeyValue,
        letters: KeyValue,
        writer: JetStreamWriter,
        *,
        keys_bucket: str,
        letters_bucket: str,
    ) -> None:
        self._js = js
        self._keys = keys
        self._letters = letters
        self._writer = writer
        self._keys_bucket = keys_bucket
        self._letters_bucket = letters_bucket

    async def claim_key(self, idempotency_key: str, task_id: str) -> str:
        """Claim an idempotency key for `task_id`; the task id that holds it (another one if claimed before).

        Raises:
            NatsStoreError: NATS did not answer.
        """
        key = idempotency_digest(idempotency_key)
        for _ in range(3):
            try:
                await self._writer.kv_create(self._keys_bucket, key, task_id.encode())
                return task_id
            except WrongLastSequenceError:
                pass
            holder = await self.key_holder(idempotency_key)
            if holder is not None:
                return holder
        raise NatsUnavailableError(f"the idempotency key of task {task_id[:40]!r} kept changing; not claimed")

    async def expire_key(self, idempotency_key: str, task_id: str, headers: dict[str, str]) -> None:
        """Write an idempotency key again with `headers` (a `Nats-TTL`: it expires then), if it still names
        `task_id` (compare-and-set: a key claimed meanwhile by another task is left alone).

        Raises:
            NatsStoreError: NATS did not answer, or did not store it.
        """
        key = idempotency_digest(idempotency_key)
        try:
            entry = await self._keys.get(key)
        except KeyNotFoundError:
            return
        except (TimeoutError, NatsError, APIError) as error:
            raise NatsUnavailableError(f"the idempotency keys are unreachable: {error!r}") from error
        if entry.value is None or entry.revision is None or entry.value.decode() != task_id:
            return
        subject = kv_subject(self._keys_bucket, key)
        with contextlib.suppress(WrongLastSequenceError):  # (claimed or rewritten meanwhile)
            await self._writer.write(
                subject, entry.value, headers=headers, expected_last_subject_sequence=entry.revision
            )

    def put_dead_letter(
        self, task_id: str, entry: bytes, *, headers: dict[str, str] | None = None
    ) -> asyncio.Future[Ack]:
        """Keep a dead letter (the contract's DeadLetterEntry) where every daemon reads it (`headers`: a
        `Nats-TTL`, say)."""
        return self._writer.write(kv_subject(self._letters_bucket, letter_key(task_id)), entry, headers=headers)

    async def take_dead_letter(self, task_id: str) -> bytes | None:
        """Remove a dead letter and return it; None if there is none (or another daemon took it first).

        Raises:
            NatsStoreError: NATS did not answer, or did not store the removal.
        """
        try:
            entry = await self._letters.get(letter_key(task_id))
        except KeyNotFoundError:
            return None
        except (TimeoutError, NatsError, APIError) as error:
            raise _unavailable(task_id, error) from error
        if entry.value is None:
            return None
        # Purged (its bucket keeps nothing of it once the marker's second is up), not deleted: a deletion marker
        # would stay for good.
        subject = kv_subject(self._letters_bucket, letter_key(task_id))
        try:
            await self._writer.write(
                subject, b"", headers=_TAKEN_HEADERS, expected_last_subject_sequence=entry.revision
            )
        except WrongLastSequenceError:
            return None  # another daemon took it first
        return bytes(entry.value)

    async def dead_letters(self) -> list[bytes]:
        """Every dead letter kept (one pass over the bucket).

        Raises:
            NatsUnavailableError: NATS did not answer.
        """
        bucket = self._letters_bucket
        found = []
        async for message in last_values(self._js, f"KV_{bucket}", f"$KV.{bucket}.>", what="the dead letters"):
            if not is_deletion(message) and message.data:
                found.append(bytes(message.data))
        return found

    async def key_holder(self, idempotency_key: str) -> str | None:
        """The task id that claimed an idempotency key (None: unclaimed).

        Raises:
            NatsUnavailableError: NATS did not answer.
        """
        try:
            entry = await self._keys.get(idempotency_digest(idempotency_key))
        except KeyNotFoundError:
            return None
        except (TimeoutError, NatsError, APIError) as error:
            raise NatsUnavailableError(f"the idempotency keys are unreachable: {error!r}") from error
        return (entry.value or b"").decode() or None


def letter_key(task_id: str) -> str:
    """A task's key among the dead letters: its id in base64url (any id fits)."""
    return base64.urlsafe_b64encode(task_id.encode()).decode().rstrip("=") or "_"


def idempotency_digest(idempotency_key: str) -> str:
    """An idempotency key's key among the keys: its SHA-256 (any key fits)."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


_KNOWN = frozenset(field.name for field in fields(TaskDoc))
_FIELD_NAMES = tuple(field.name for field in fields(TaskDoc))


def encode_doc(doc: TaskDoc) -> bytes:
    """A document as compact JSON, its fields in their order (bytes as base64)."""
    # (made by orjson: a document is encoded several times per task, and the standard library's encoder cost
    # ~9 us of it, orjson ~2.6)
    data: dict[str, Any] = {name: getattr(doc, name) for name in _FIELD_NAMES}
    for name in _BYTES_FIELDS:
        data[name] = base64.b64encode(data[name]).decode()
    return orjson.dumps(data)


def decode_doc(value: bytes) -> TaskDoc:
    """A document from its JSON (fields it does not know, written by a newer version, are ignored).

    Raises:
        ValueError, KeyError, TypeError: it is not a document.
    """
    loaded = orjson.loads(value)
    if not isinstance(loaded, dict):
        raise ValueError(f"a task document is a JSON object, not {type(loaded).__name__}")
    data = {name: item for name, item in loaded.items() if name in _KNOWN}
    for name in _BYTES_FIELDS:
        data[name] = base64.b64decode(data.get(name, ""))
    return TaskDoc(**data)


def _unavailable(task_id: str, error: BaseException) -> NatsUnavailableError:
    return NatsUnavailableError(f"the dead letters are unreachable (task {task_id[:40]!r}): {error!r}")
