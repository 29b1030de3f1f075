"""NatsScheduleBook: the schedules of the daemons that share their tasks on NATS, in one JetStream KV bucket.

Two keys per schedule, each a JSON document: `def.<name>` (its definition) and `state.<name>` (what the
daemons note as they fire it). A name that is not a sequence of dot-separated tokens (`a..b`, `a.`: not a
subject NATS takes) is kept as `=` and its UTF-8 in base64url instead; no name starts with `=`.

Every write that must not undo another daemon's is a compare-and-set on the key's revision, read from the
stream's leader (a direct get may answer from a lagging copy):

- `create` writes the definition only where there is none (no key, or a removal's marker): of two daemons
  creating one name, one wins. Then it writes the state.
- `put_definition` and `remove` rewrite the definition they read; a concurrent removal is never undone.
- `put_state` writes over the state it read, having seen the definition after that read. Whatever changed
  the state meanwhile (another daemon's note, a removal, a creation) came later: the note is dropped, as
  overwritten. A removal that lands between its check and its write clears the state after it.
- `remove` marks the definition removed, then clears the state unless the name was created again meanwhile.

Only a schedule whose definition is there is read (`load`, `get`): a state left without one (a removal cut
short by an outage) is never seen, and the next creation of the name writes over it. A missing state reads
as `{}`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from dataclasses import dataclass

from nats.aio.client import Client
from nats.errors import MaxPayloadError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE

from worker_abstraction.errors import InvalidParametersError, ScheduleExistsError, ScheduleNotFoundError
from worker_abstraction.schedules.book import Document
from worker_abstraction.stores.jetstream.connection import NATS_ERRORS, WRONG_LAST_SEQUENCE, NatsUnavailableError
from worker_abstraction.stores.jetstream.scan import is_deletion, last_values

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_BUCKET", "MAX_DOCUMENT_BYTES", "NatsScheduleBook"]

DEFAULT_BUCKET = "wa_schedules"
MAX_DOCUMENT_BYTES = 256 * 1024  # a definition (or a state) larger than this is refused
ANSWER_TIMEOUT_SECONDS = 5.0
_DEFINITION, _STATE = "def.", "state."
_ENCODED = "="  # the first character of an encoded name's token (a schedule's name never starts with it)
_PLAIN = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_MAX_TOKEN_CHARS = 1024  # longer names (never a schedule's) are looked up nowhere
_CAS_ATTEMPTS = 10
_REMOVED = {KV_OP: KV_PURGE, "Nats-Rollup": "sub"}


@dataclass(frozen=True, slots=True)
class _Found:
    value: bytes | None  # None: no value (never written, or removed)
    revision: int  # the key's last revision (its removal marker's included); 0: never written


class NatsScheduleBook:
    """A `ScheduleBook` every daemon on the NATS cluster shares, on `client` (which stays its maker's: `aclose`
    leaves it open). Its bucket is created, if missing, by its first call (or by `open`).

    Args:
        client: the connection it goes over.
        bucket: the KV bucket of the schedules.
        replicas: copies of the bucket if it is created here (an existing one keeps its own).
        answer_timeout_seconds: how long a read or a write waits for NATS.
    """

    shared = True

    def __init__(
        self,
        client: Client,
        *,
        bucket: str = DEFAULT_BUCKET,
        replicas: int = 1,
        answer_timeout_seconds: float = ANSWER_TIMEOUT_SECONDS,
    ) -> None:
        self.bucket = bucket
        self.replicas = replicas
        self._js = client.jetstream(timeout=answer_timeout_seconds)
        self._stream = f"KV_{bucket}"
        self._prefix = f"$KV.{bucket}."
        self._opened = False
        self._opening = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        client: Client,
        *,
        bucket: str = DEFAULT_BUCKET,
        replicas: int = 1,
        answer_timeout_seconds: float = ANSWER_TIMEOUT_SECONDS,
    ) -> NatsScheduleBook:
        """The book on `client`, its bucket opened now (created if missing).

        Raises:
            NatsUnavailableError: NATS did not answer.
        """
        book = cls(client, bucket=bucket, replicas=replicas, answer_timeout_seconds=answer_timeout_seconds)
        await book._open()
        return book

    async def load(self) -> list[tuple[Document, Document]]:
        """Every schedule whose definition is there: (definition, state), by name.

        Raises:
            NatsUnavailableError: NATS did not answer.
        """
        await self._open()
        definitions: dict[str, Document] = {}
        states: dict[str, Document] = {}
        async for message in last_values(self._js, self._stream, self._prefix + ">", what="the schedules"):
            if is_deletion(message):
                continue
            key = message.subject[len(self._prefix) :]
            for prefix, documents in ((_DEFINITION, definitions), (_STATE, states)):
                name = _name(key[len(prefix) :]) if key.startswith(prefix) else None
                if name is not None:
                    document = _decoded(message.data, key)
                    if document is not None:
                        documents[name] = document
        return [(definitions[name], states.get(name, {})) for name in sorted(definitions)]

    async def get(self, name: str) -> tuple[Document, Document] | None:
        """A schedule's (definition, state); None if there is no such schedule.

        Raises:
            NatsUnavailableError: NATS did not answer.
        """
        await self._open()
        token = _token(name)
        if token is None:
            return None
        definition = _decoded((await self._read(_DEFINITION + token)).value, _DEFINITION + token)
        if definition is None:
            return None
        state = _decoded((await self._read(_STATE + token)).value, _STATE + token)
        return definition, state or {}

    async def create(self, name: str, definition: Document, state: Document) -> None:
        """Add a schedule: its definition, then its state.

        Raises:
            ScheduleExistsError: the name is taken (of two creating it at once, one wins).
            InvalidParametersError: a document is not JSON, or over `MAX_DOCUMENT_BYTES`.
            NatsUnavailableError: NATS did not answer.
        """
        token = _token(name)
        if token is None:
            raise InvalidParametersError([f"schedule name {name[:100]!r} is not UTF-8 text, or too long to keep"])
        definition_value = _encoded(definition, "definition")
        state_value = _encoded(state, "state")
        await self._open()
        key = _DEFINITION + token
        if await self._publish(key, definition_value, last=0) is None:
            found = await self._read(key)  # taken, or only a removal's marker left there
            if found.value is not None or await self._publish(key, definition_value, last=found.revision) is None:
                raise ScheduleExistsError(name)
        # (unconditional: whatever a state key holds before its definition exists is never read)
        await self._publish(_STATE + token, state_value, last=None)

    async def put_definition(self, name: str, definition: Document) -> None:
        """Replace a schedule's definition (never one removed meanwhile).

        Raises:
            ScheduleNotFoundError: there is no such schedule (or it was removed meanwhile).
            InvalidParametersError: the definition is not JSON, or over `MAX_DOCUMENT_BYTES`.
            NatsUnavailableError: NATS did not answer, or the definition kept changing.
        """
        value = _encoded(definition, "definition")
        token = _token(name)
        if token is None:
            raise ScheduleNotFoundError(name)
        await self._open()
        key = _DEFINITION + token
        for _ in range(_CAS_ATTEMPTS):
            found = await self._read(key)
            if found.value is None:
                raise ScheduleNotFoundError(name)
            if await self._publish(key, value, last=found.revision) is not None:
                return
        raise NatsUnavailableError(f"schedule {name[:100]!r} kept changing; its definition was not written")

    async def put_state(self, name: str, state: Document) -> None:
        """Write a schedule's state (nothing, if it was removed meanwhile).

        Raises:
            InvalidParametersError: the state is not JSON, or over `MAX_DOCUMENT_BYTES`.
            NatsUnavailableError: NATS did not answer.
        """
        value = _encoded(state, "state")
        token = _token(name)
        if token is None:
            return
        await self._open()
        # The state is read before the definition: a removal or a re-creation after that read changes the
        # state, so the compare-and-set below refuses this note rather than carrying it into what came later.
        current = await self._read(_STATE + token)
        if (await self._read(_DEFINITION + token)).value is None:
            return
        await self._publish(_STATE + token, value, last=current.revision)

    async def remove(self, name: str) -> bool:
        """Remove a schedule; False if there was none (of two removing one at once, one says True).

        Raises:
            NatsUnavailableError: NATS did not answer, or the definition kept changing.
        """
        await self._open()
        token = _token(name)
        if token is None:
            return False
        key = _DEFINITION + token
        for _ in range(_CAS_ATTEMPTS):
            found = await self._read(key)
            if found.value is None:
                return False
            if await self._publish(key, b"", last=found.revision, headers=_REMOVED) is not None:
                await self._clear_state(token)
                return True
        raise NatsUnavailableError(f"schedule {name[:100]!r} kept changing; it was not removed")

    async def aclose(self) -> None:
        return None  # (nothing of its own: the connection is its opener's)

    async def _open(self) -> None:
        """Open the bucket (creating it if missing), once; a call that fails leaves it to the next one."""
        if self._opened:
            return
        async with self._opening:
            if self._opened:
                return
            try:
                try:
                    await self._js.key_value(self.bucket)
                except BucketNotFoundError:
                    config = KeyValueConfig(
                        bucket=self.bucket, history=1, storage=StorageType.FILE, replicas=self.replicas
                    )
                    await self._js.create_key_value(config)
            except NATS_ERRORS as error:
                raise NatsUnavailableError(f"cannot open the NATS bucket {self.bucket!r}: {error!r}") from error
            self._opened = True

    async def _clear_state(self, token: str) -> None:
        """Remove the state of a schedule just removed, unless its name was created again meanwhile (a note
        that passed its check before the removal may land after it: it is cleared too)."""
        for _ in range(_CAS_ATTEMPTS):
            found = await self._read(_STATE + token)
            if found.value is None or (await self._read(_DEFINITION + token)).value is not None:
                return
            if await self._publish(_STATE + token, b"", last=found.revision, headers=_REMOVED) is not None:
                return
        logger.warning("the state of removed schedule %s kept changing; left behind (never read)", token)

    async def _read(self, key: str) -> _Found:
        """A key's last value and revision, from the stream's leader."""
        try:
            message = await self._js.get_msg(self._stream, subject=self._prefix + key, direct=False)
        except NotFoundError:
            return _Found(None, 0)
        except NATS_ERRORS as error:
            raise _unavailable(error) from error
        revision = int(message.seq or 0)
        headers = message.headers or {}
        if headers.get(KV_OP) in (KV_DEL, KV_PURGE) or "Nats-Marker-Reason" in headers:
            return _Found(None, revision)
        return _Found(message.data or b"", revision)

    async def _publish(
        self, key: str, value: bytes, *, last: int | None, headers: dict[str, str] | None = None
    ) -> int | None:
        """Write a key if its revision is still `last` (0: never written; None: whatever it is); the new
        revision, or None when it was not."""
        sent = dict(headers or {})
        if last is not None:
            sent["Nats-Expected-Last-Subject-Sequence"] = str(last)
        try:
            ack = await self._js.publish(self._prefix + key, value, headers=sent)
        except MaxPayloadError as error:
            raise InvalidParametersError(
                [f"a schedule document of {len(value)} bytes is over the NATS server's max_payload"]
            ) from error
        except APIError as error:
            if error.err_code in WRONG_LAST_SEQUENCE:
                return None
            raise _unavailable(error) from error
        except NATS_ERRORS as error:  # disconnected, or no answer in time
            raise _unavailable(error) from error
        return int(ack.seq)


def _token(name: str) -> str | None:
    """A name's part of its keys (None: not text, or too long to be anyone's)."""
    if _PLAIN.fullmatch(name):
        return name
    try:
        token = _ENCODED + base64.urlsafe_b64encode(name.encode()).decode()
    except UnicodeEncodeError:  # (a lone surrogate: no schedule's name)
        return None
    return token if len(token) <= _MAX_TOKEN_CHARS else None


def _name(token: str) -> str | None:
    if not token.startswith(_ENCODED):
        return token if _PLAIN.fullmatch(token) else None
    try:
        return base64.urlsafe_b64decode(token[1:]).decode()
    except ValueError:  # (binascii.Error and UnicodeDecodeError are ValueErrors)
        return None


def _encoded(document: Document, what: str) -> bytes:
    try:
        value = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise InvalidParametersError([f"a schedule's {what} must be JSON: {error}"]) from error
    if len(value) > MAX_DOCUMENT_BYTES:
        raise InvalidParametersError(
            [f"a schedule's {what} takes {len(value)} bytes as JSON, over {MAX_DOCUMENT_BYTES} (256 KiB)"]
        )
    return value


def _decoded(value: bytes | None, key: str) -> Document | None:
    if value is None:
        return None
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        logger.warning("ignoring the unreadable value of %s in the schedules bucket", key)
        return None
    return document


def _unavailable(error: Exception) -> NatsUnavailableError:
    return NatsUnavailableError(f"the schedules' NATS bucket failed: {error!r}")
