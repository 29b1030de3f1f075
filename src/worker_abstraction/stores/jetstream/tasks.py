"""TaskDocs: each task's durable document in a JetStream KV bucket, changed only by compare-and-set.

When several orchestrator daemons share tasks, what a task is and how far it got lives here, one key per
task, so that whichever replica holds the task (see `work.py`) can carry it on, and any replica can read
it. Every change is a compare-and-set on the key's revision (`change` reads, applies a function, writes
back only if nobody wrote meanwhile, and tries again otherwise), so two replicas never both finish a task,
and a change made on behalf of a replica that no longer holds the task is refused (`holder` fences it, as
attempt numbers fence attempts on workers).

- Keys are the task id in base64url (any id fits; ids are at most `MAX_ID_LENGTH` characters).
- A value is a JSON object (bytes as base64): the submission as the contract's SubmitTaskRequest, the
  state (`queued`, `dispatched`, `finished`), the replica holding it, the worker and attempt it was last
  sent to, the attempt numbers reserved (a replica taking the task over numbers its attempts above them),
  the failures so far, a cancel asked for, and once finished its TaskRecord and status.
- Idempotency keys live in a second bucket (the key a digest of the idempotency key, the value the task
  id): `claim_key` creates it, so of two replicas accepting one key at once exactly one task is made.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import orjson
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    APIError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.kv import KeyValue

from worker_abstraction.errors import TaskExistsError
from worker_abstraction.stores.jetstream.connection import (
    NATS_ERRORS,
    WRONG_LAST_SEQUENCE,
    NatsStoreError,
    NatsUnavailableError,
)

logger = logging.getLogger(__name__)

DEFAULT_BUCKET = "wa_tasks"
DEFAULT_KEYS_BUCKET = "wa_task_keys"
DEFAULT_DEAD_LETTERS_BUCKET = "wa_dead_letters"
QUEUED, DISPATCHED, FINISHED = "queued", "dispatched", "finished"
_BYTES_FIELDS = ("request", "record")
_CHANGE_ATTEMPTS = 20  # compare-and-set rounds before a change gives up (each one lost to another writer)
_REMEMBERED = 10_000  # documents whose last written revision is kept, to change them without reading first


@dataclass(frozen=True, slots=True)
class TaskDoc:
    """A task as the replicas share it."""

    task_id: str
    request: bytes  # the serialized SubmitTaskRequest (id, owner and creation time filled in)
    capability: str
    accepted_at: float
    owner: str = ""  # the principal that submitted it
    idempotency_key: str = ""
    state: str = QUEUED
    holder: str = ""  # the replica carrying it on now (empty: nobody has taken it yet)
    worker_id: str = ""
    worker_address: str = ""
    attempt: int = 0  # the attempt last sent
    dispatched_at: float = 0.0  # when it was sent (epoch seconds): a takeover keeps the attempt's start
    reserved: int = 0  # attempt numbers up to this one may have been sent
    failures: int = 0
    cancel_reason: str = ""
    record: bytes = b""  # the serialized TaskRecord once finished
    status: int = 0  # the final TaskStatus once finished
    takes: int = 0  # how often a daemon took it over from one that did not give it back (PartitionedHome)
    released: bool = False  # its holder gave it back (stopping, or rebalancing): the next take is not counted

    @property
    def finished(self) -> bool:
        return self.state == FINISHED


@dataclass(frozen=True, slots=True)
class Held:
    """A task a replica took: its document, and the attempt numbers earlier holders may have sent."""

    doc: TaskDoc
    sent_up_to: int  # this holder numbers its attempts above it (and up to doc.reserved)


class StaleHolderError(NatsStoreError):
    """A change on behalf of a replica that no longer holds the task (another took it over): refused."""

    def __init__(self, task_id: str, holder: str, now_held_by: str) -> None:
        super().__init__(f"task {task_id[:40]!r} is held by {now_held_by!r} now, not {holder!r}: change refused")
        self.task_id, self.holder, self.now_held_by = task_id, holder, now_held_by


@dataclass(frozen=True, slots=True)
class TaskDocsOptions:
    """Where the documents are kept.

    Args:
        bucket: the KV bucket of the documents.
        keys_bucket: the KV bucket of the idempotency keys.
        dead_letters_bucket: the KV bucket of the dead letters (every replica's).
        replicas: copies of each bucket in a NATS cluster (1, or 3 for R3).
        answer_timeout_seconds: how long a read or a write waits for the server.
    """

    bucket: str = DEFAULT_BUCKET
    keys_bucket: str = DEFAULT_KEYS_BUCKET
    dead_letters_bucket: str = DEFAULT_DEAD_LETTERS_BUCKET
    replicas: int = 1
    answer_timeout_seconds: float = 5.0


class TaskDocs:
    """The shared task documents; open them with `TaskDocs.open`."""

    def __init__(self, docs: KeyValue, keys: KeyValue, letters: KeyValue) -> None:
        self._docs = docs
        self._keys = keys
        self._letters = letters
        self._written: OrderedDict[str, tuple[TaskDoc, int]] = OrderedDict()  # what this instance wrote last

    def _remember(self, task_id: str, doc: TaskDoc, revision: int) -> None:
        if doc.finished:
            return  # nothing more to change
        self._written[task_id] = (doc, revision)
        if len(self._written) > _REMEMBERED:
            self._written.popitem(last=False)

    @classmethod
    async def open(cls, client: Client, options: TaskDocsOptions | None = None) -> TaskDocs:
        """Create the buckets if missing.

        Raises:
            NatsStoreError: a bucket cannot be created or read.
        """
        options = options or TaskDocsOptions()
        if not 1 <= options.replicas <= 5:
            raise NatsStoreError(f"task documents: replicas must be 1 to 5, not {options.replicas!r}")
        js = client.jetstream(timeout=options.answer_timeout_seconds)
        buckets = []
        for name in (options.bucket, options.keys_bucket, options.dead_letters_bucket):
            try:
                try:
                    buckets.append(await js.key_value(name))
                except BucketNotFoundError:
                    config = KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE, replicas=options.replicas)
                    buckets.append(await js.create_key_value(config))
            except (TimeoutError, NatsError, APIError) as error:
                raise NatsUnavailableError(f"cannot open the NATS bucket {name!r}: {error!r}") from error
        return cls(*buckets)

    async def probe(self, *, timeout_seconds: float) -> None:
        """Return once the documents' stream answers (its leader reports on it) within `timeout_seconds`.

        Raises:
            NatsUnavailableError: it did not (NATS unreachable, no leader, no answer in time).
        """
        try:
            async with asyncio.timeout(timeout_seconds):
                await self._docs.status()
        except NATS_ERRORS as error:
            raise NatsUnavailableError(f"the task documents do not answer: {error!r}") from error

    async def create(self, doc: TaskDoc) -> int:
        """Store a new task's document; its revision.

        Raises:
            TaskExistsError: a task with this id exists.
            NatsStoreError: NATS did not store it.
        """
        try:
            revision = int(await self._docs.create(_key(doc.task_id), _encode(doc)))
        except KeyWrongLastSequenceError as error:
            raise TaskExistsError(doc.task_id) from error
        except (TimeoutError, NatsError, APIError) as error:
            raise _unavailable(doc.task_id, error) from error
        return revision

    async def get(self, task_id: str) -> tuple[TaskDoc, int] | None:
        """A task's document and its revision (None: no such task)."""
        try:
            entry = await self._docs.get(_key(task_id))
        except KeyNotFoundError:
            return None
        except (TimeoutError, NatsError, APIError) as error:
            raise _unavailable(task_id, error) from error
        if entry.value is None or entry.revision is None:
            return None
        try:
            return _decode(entry.value), int(entry.revision)
        except (ValueError, KeyError, TypeError) as error:  # written by something else, or damaged
            raise NatsStoreError(f"task document of {task_id[:40]!r} is unreadable: {error!r}") from error

    async def change(
        self, task_id: str, apply: Callable[[TaskDoc], TaskDoc | None], *, holder: str | None = None
    ) -> TaskDoc | None:
        """Apply `apply` to the current document and write the result if nobody wrote meanwhile (else again).

        `apply` returns the new document, or None to leave it as it is (e.g. it is finished already). With
        `holder`, the change is made only while that replica holds the task.

        Returns:
            The document written, or None when there is no such task or `apply` left it as it was.

        Raises:
            StaleHolderError: `holder` no longer holds the task.
            NatsStoreError: NATS did not answer, or other writers won every round.
        """
        # What this replica wrote last is usually still the document (its holder is the one that writes it):
        # the first round tries that revision without reading it back; another writer makes it read.
        found = self._written.pop(task_id, None)
        for _ in range(_CHANGE_ATTEMPTS):
            if found is None:
                found = await self.get(task_id)
                if found is None:
                    return None
            current, revision = found
            found = None
            if holder is not None and current.holder != holder:
                raise StaleHolderError(task_id, holder, current.holder)
            changed = apply(current)
            if changed is None:
                return None
            try:
                written = await self._docs.update(_key(task_id), _encode(changed), last=revision)
            except KeyWrongLastSequenceError:
                continue  # another replica wrote first: apply the change to what it wrote
            except (TimeoutError, NatsError, APIError) as error:
                raise _unavailable(task_id, error) from error
            self._remember(task_id, changed, int(written))
            return changed
        raise NatsUnavailableError(f"task {task_id[:40]!r} changed {_CHANGE_ATTEMPTS} times under us; change not made")

    async def take_over(self, task_id: str, holder: str, block: int, *, steal: bool = True) -> Held | None:
        """Make `holder` the task's holder (None: no such task, it is finished, or held and not `steal`).

        A task nobody held yet keeps the attempt numbers reserved at its acceptance. One taken from another
        replica gets `block` numbers above every one that replica may have sent: `Held.sent_up_to` says
        where the new holder's numbers start (above it), `Held.doc.reserved` where they end.
        """
        earlier = 0

        def hold(doc: TaskDoc) -> TaskDoc | None:
            nonlocal earlier
            if doc.finished or (not steal and doc.holder and doc.holder != holder):
                return None
            if not doc.holder:
                earlier = 0
                return replace(doc, holder=holder)
            earlier = max(doc.reserved, doc.attempt)
            return replace(doc, holder=holder, reserved=earlier + block)

        written = await self.change(task_id, hold)
        return None if written is None else Held(written, earlier)

    async def delete(self, task_id: str) -> None:
        """Remove a task's document (one accepted by nobody after all; gone already is fine)."""
        try:
            await self._docs.purge(_key(task_id))
        except (TimeoutError, NatsError, APIError) as error:
            raise _unavailable(task_id, error) from error

    async def claim_key(self, idempotency_key: str, task_id: str) -> str:
        """Claim an idempotency key for `task_id`; the task id that holds it (another one if claimed before).

        Raises:
            NatsStoreError: NATS did not answer.
        """
        key = _key_of(idempotency_key)
        try:
            await self._keys.create(key, task_id.encode())
            return task_id
        except KeyWrongLastSequenceError:
            pass
        except (TimeoutError, NatsError, APIError) as error:
            raise _unavailable(task_id, error) from error
        try:
            entry = await self._keys.get(key)
        except KeyNotFoundError:  # released between the two calls: claim it again
            return await self.claim_key(idempotency_key, task_id)
        except (TimeoutError, NatsError, APIError) as error:
            raise _unavailable(task_id, error) from error
        return (entry.value or b"").decode()

    async def put_dead_letter(self, task_id: str, entry: bytes) -> None:
        """Keep a dead letter (the contract's DeadLetterEntry) where every replica reads it."""
        try:
            await self._letters.put(_key(task_id), entry)
        except (TimeoutError, NatsError, APIError) as error:
            raise _unavailable(task_id, error) from error

    async def take_dead_letter(self, task_id: str) -> bytes | None:
        """Remove a dead letter and return it; None if there is none (or another replica took it first)."""
        try:
            entry = await self._letters.get(_key(task_id))
        except KeyNotFoundError:
            return None
        except (TimeoutError, NatsError, APIError) as error:
            raise _unavailable(task_id, error) from error
        if entry.value is None:
            return None
        try:
            await self._letters.delete(_key(task_id), last=entry.revision)
        except APIError as error:
            if error.err_code in WRONG_LAST_SEQUENCE:
                return None  # another replica took it first
            raise _unavailable(task_id, error) from error
        except (TimeoutError, NatsError) as error:
            raise _unavailable(task_id, error) from error
        return bytes(entry.value)

    async def dead_letters(self) -> list[bytes]:
        """Every dead letter kept (one read each)."""
        try:
            keys = await self._letters.keys()
        except NoKeysError:
            return []
        except (TimeoutError, NatsError, APIError) as error:
            raise NatsUnavailableError(f"cannot list the dead letters: {error!r}") from error
        found = []
        for key in keys:
            try:
                entry = await self._letters.get(key)
            except KeyNotFoundError:
                continue
            except (TimeoutError, NatsError, APIError) as error:
                raise NatsUnavailableError(f"cannot read dead letter {key[:40]!r}: {error!r}") from error
            if entry.value:
                found.append(bytes(entry.value))
        return found

    async def key_holder(self, idempotency_key: str) -> str | None:
        """The task id that claimed an idempotency key (None: unclaimed)."""
        try:
            entry = await self._keys.get(_key_of(idempotency_key))
        except KeyNotFoundError:
            return None
        except (TimeoutError, NatsError, APIError) as error:
            raise NatsUnavailableError(f"the idempotency keys are unreachable: {error!r}") from error
        return (entry.value or b"").decode() or None

    async def all(self) -> AsyncIterator[TaskDoc]:
        """Every document (one read per task: for recovery and listings, not for the hot path)."""
        try:
            keys = await self._docs.keys()
        except NoKeysError:
            return
        except (TimeoutError, NatsError, APIError) as error:
            raise NatsUnavailableError(f"cannot list the task documents: {error!r}") from error
        for key in keys:
            try:
                entry = await self._docs.get(key)
            except KeyNotFoundError:
                continue  # removed since the listing
            except (TimeoutError, NatsError, APIError) as error:
                raise NatsUnavailableError(f"cannot read task document {key[:40]!r}: {error!r}") from error
            if entry.value is not None:
                try:
                    yield _decode(entry.value)
                except (ValueError, KeyError, TypeError) as error:
                    logger.error("skipping an unreadable task document %s: %r", key[:40], error)


def _key(task_id: str) -> str:
    return base64.urlsafe_b64encode(task_id.encode()).decode().rstrip("=") or "_"


def _key_of(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


_KNOWN = frozenset(field.name for field in fields(TaskDoc))
_FIELD_NAMES = tuple(field.name for field in fields(TaskDoc))


def _encode(doc: TaskDoc) -> bytes:
    # Its fields by name, in their order, as compact JSON (the bytes `json.dumps(asdict(doc), separators=(",",
    # ":"))` gave, made by orjson: a document is encoded several times per task, and the standard library's
    # encoder cost ~9 us of it, orjson ~2).
    data: dict[str, Any] = {name: getattr(doc, name) for name in _FIELD_NAMES}
    for name in _BYTES_FIELDS:
        data[name] = base64.b64encode(data[name]).decode()
    return orjson.dumps(data)


def _decode(value: bytes) -> TaskDoc:
    loaded = orjson.loads(value)
    if not isinstance(loaded, dict):
        raise ValueError(f"a task document is a JSON object, not {type(loaded).__name__}")
    data = {name: item for name, item in loaded.items() if name in _KNOWN}  # (newer fields: ignored)
    for name in _BYTES_FIELDS:
        data[name] = base64.b64decode(data.get(name, ""))
    return TaskDoc(**data)


def _unavailable(task_id: str, error: BaseException) -> NatsUnavailableError:
    return NatsUnavailableError(f"the task documents are unreachable (task {task_id[:40]!r}): {error!r}")
