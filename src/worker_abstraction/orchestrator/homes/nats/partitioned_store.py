"""PartitionedStore: what `PartitionedHome` keeps on NATS, and every write through one `JetStreamWriter`.

- **Task documents** (`wa_ptasks`, a KV bucket, history 1): one key per unfinished task,
  `<partition>.<base64url id>` with `partition = partition_of(task_id, partitions)`, so any daemon finds a
  task from its id alone, and the tasks of one partition are one subject filter (`$KV.wa_ptasks.<partition>.*`)
  that its owner reads (`scan_partition`) when it gains the partition, after a reconnection, and now and then.
  The value is a `TaskDoc` (as `stores/jetstream/tasks.py` encodes it). Every write is a compare-and-set on
  the key's revision, made through the writer: the writes of every task made in one turn of the loop share one
  socket write, and their acknowledgements come back on one inbox.
- **Pokes** (`wa.pokes.<docs bucket>.<partition>`, core NATS): a daemon that writes into a document of a
  partition it does not hold (a task whose caller chose an id that hashes there, a cancel) tells the
  partition's holder, which reads that document. Nothing else is heard between scans: a daemon's own writes
  never come back to it. A poke lost (its publisher's connection dropped, say) is made good by the next scan.
- **Finished documents** move out of their partition, so a daemon that gains a partition replays its
  unfinished tasks only, however many finished before. The task's end is written straight to
  `done.<base64url id>` (`finish_doc`: created once, so a task ends once), then its live key is purged
  (`purge_finished`), fenced by the live document's revision, leaving a marker that expires after
  `moved_marker_seconds` (per-message TTL) and says it was moved. A crash between the two leaves an
  unfinished document on its live key beside the finished one: whoever holds the partition looks for the
  finished one before it runs a task it takes on, and purges the live key instead (`move_finished` makes both
  steps, each done once). `get` reads the finished key, then the live one, then the finished one again if the
  live one is gone: a task is in at least one of them at every moment, so a task that exists is always found,
  and a finished one is read as finished.
- **Idempotency keys** (`wa_ptask_keys`): a key per idempotency key (its SHA-256: `idempotency_digest`),
  created once (compare-and-set on "absent"), its value the task id that claimed it.
- **Dead letters** (`wa_pdead_letters`): one key per task (`letter_key`), read through `SharedLetters`.
- **Retention** (`use_retention`, see `partitioned_expiry`): what a finished task leaves expires by per-message
  TTLs: its finished document, its idempotency key (written again once the end is stored: `expire_key`), its
  updates (its last one a rollup of the others: `send_last_update`); dead letters by theirs.
- **Updates**: the update log's stream (`WA_UPDATES`, subjects `wa.updates.<token>`), written through the
  writer with the update's number in a header, as `UpdateLog.publish` sets it, unacknowledged (`send_update`:
  in order, nothing waited for). A watcher hears one task's updates only (`ScopedUpdateLog`: a subscription
  per followed task, not one to every task's).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from worker_abstraction.errors import TaskExistsError
from worker_abstraction.orchestrator.core.retention import Retention
from worker_abstraction.orchestrator.homes.nats.partitioned_buckets import PartitionedStoreOptions, open_buckets
from worker_abstraction.orchestrator.homes.nats.partitioned_expiry import Expiry
from worker_abstraction.stores.jetstream.connection import (
    NATS_ERRORS,
    NatsStoreError,
    NatsUnavailableError,
)
from worker_abstraction.stores.jetstream.partitions import partition_of
from worker_abstraction.stores.jetstream.pipeline import (
    Ack,
    JetStreamWriter,
    WrongLastSequenceError,
)
from worker_abstraction.stores.jetstream.scan import is_deletion, last_values
from worker_abstraction.stores.jetstream.scoped_updates import ScopedUpdateLog
from worker_abstraction.stores.jetstream.tasks import (
    SharedLetters,
    TaskDoc,
    decode_doc,
    encode_doc,
)
from worker_abstraction.stores.jetstream.updates import (
    SEQUENCE_HEADER,
    SUBJECT_PREFIX,
    task_token,
)

logger = logging.getLogger(__name__)

__all__ = ["PartitionedStore", "PartitionedStoreOptions", "decode_doc", "encode_doc"]

_FINISHED_PREFIX = "done."  # the keys of finished documents (no partition's subject filter matches them)
_MOVED_HEADER = "Wa-Moved"  # on the marker a moved document leaves: its id was taken (removals have none)


class PartitionedStore:
    """The partitioned home's buckets, stream and writer; open it with `PartitionedStore.open`."""

    def __init__(
        self,
        client: Client,
        options: PartitionedStoreOptions,
        docs: KeyValue,
        letters: SharedLetters,
        writer: JetStreamWriter,
        log: ScopedUpdateLog,
    ) -> None:
        self.client = client
        self.options = options
        self.partitions = options.partitions
        self.writer = writer
        self.log = log
        self.letters = letters
        self._docs = docs
        self.expiry = Expiry()
        self._js = client.jetstream(timeout=options.answer_timeout_seconds)
        self._docs_stream = f"KV_{options.docs_bucket}"
        self._docs_prefix = f"$KV.{options.docs_bucket}."
        self._pokes = f"wa.pokes.{options.docs_bucket}"  # (core NATS, no stream: `poke`)
        self._moved_headers = {
            KV_OP: KV_PURGE,
            "Nats-Rollup": "sub",
            "Nats-TTL": f"{options.moved_marker_seconds}s",
            _MOVED_HEADER: "1",
        }
        self._removed_headers = {KV_OP: KV_PURGE, "Nats-Rollup": "sub", "Nats-TTL": f"{options.moved_marker_seconds}s"}

    @classmethod
    async def open(cls, client: Client, options: PartitionedStoreOptions | None = None) -> PartitionedStore:
        """Create the buckets and the stream if missing, and open the writer.

        Raises:
            NatsStoreError: bad options; NatsUnavailableError: NATS did not answer.
        """
        options = options or PartitionedStoreOptions()
        docs, shared, writer, log = await open_buckets(client, options)
        return cls(client, options, docs, shared, writer, log)

    def use_retention(self, retention: Retention) -> None:
        """Keep what tasks finishing from now on leave (and dead letters kept from now on) as `retention` says."""
        self.expiry = Expiry(retention)

    async def aclose(self) -> None:
        await self.writer.aclose()
        await self.log.close()

    # ---- documents ---------------------------------------------------------------------------------------

    def partition(self, task_id: str) -> int:
        return partition_of(task_id, self.partitions)

    def doc_key(self, task_id: str) -> str:
        return f"{partition_of(task_id, self.partitions)}.{_token(task_id)}"

    def doc_subject(self, task_id: str) -> str:
        return self._docs_prefix + self.doc_key(task_id)

    def finished_key(self, task_id: str) -> str:
        """Where a finished task's document is kept once moved out of its partition."""
        return _FINISHED_PREFIX + _token(task_id)

    def partition_subjects(self, partition: int) -> str:
        """The subject filter of one partition's documents."""
        return f"{self._docs_prefix}{partition}.*"

    def task_id_of(self, subject: str) -> str | None:
        """The task id of a document's subject (None: not one of ours)."""
        _, _, token = subject.rpartition(".")
        try:
            return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except ValueError:
            return None

    def write_doc(self, task_id: str, doc: TaskDoc, last_revision: int) -> asyncio.Future[Ack]:
        """Write a document if its revision is still `last_revision` (0: a new one), with the next batch."""
        return self.writer.write(
            self.doc_subject(task_id), encode_doc(doc), expected_last_subject_sequence=last_revision
        )

    async def create_doc(self, doc: TaskDoc, *, chosen: bool = False) -> int:
        """Create a document whose id may have been used by an acceptance that failed (its document removed
        counts as absent); its revision. `chosen`: the caller chose the id, so a finished task of that id
        counts too (its document moved out of the partition).

        Raises:
            TaskExistsError: a task with this id exists (or, `chosen`, existed).
            NatsStoreError: NATS did not store it.
        """
        task_id = doc.task_id
        if chosen and await self._read(self.finished_key(task_id), task_id) is not None:
            raise TaskExistsError(task_id)
        subject, data = self.doc_subject(task_id), encode_doc(doc)
        try:
            return (await self.writer.write(subject, data, expected_last_subject_sequence=0)).seq
        except WrongLastSequenceError as error:
            removed = await self._removed_at(subject)
            if removed is None:
                raise TaskExistsError(task_id) from error
        try:
            return (await self.writer.write(subject, data, expected_last_subject_sequence=removed)).seq
        except WrongLastSequenceError as error:
            raise TaskExistsError(task_id) from error

    async def update_doc(self, doc: TaskDoc, last_revision: int) -> int:
        """Compare-and-set a document (see `write_doc`); its new revision.

        Raises:
            WrongLastSequenceError: someone wrote it since `last_revision`.
            NatsStoreError: NATS did not store it.
        """
        return (await self.write_doc(doc.task_id, doc, last_revision)).seq

    async def get(self, task_id: str) -> tuple[TaskDoc, int] | None:
        """A task's document and its revision (None: no such task): its finished one, else its live one.

        Raises:
            NatsStoreError: NATS did not answer, or the document is unreadable.
        """
        # (a task is written to its finished key before its live key goes, never after: one missing from both
        # reads below finished in between, and is under its finished key by the time the live one is gone)
        finished = self.finished_key(task_id)
        found = await self._read(finished, task_id)
        if found is None:
            found = await self._read(self.doc_key(task_id), task_id)
            if found is None:
                found = await self._read(finished, task_id)
        return found

    async def get_live(self, task_id: str) -> tuple[TaskDoc, int] | None:
        """A task's document on its live key, and its revision (None: it has none there).

        Raises:
            NatsStoreError: NATS did not answer, or the document is unreadable.
        """
        return await self._read(self.doc_key(task_id), task_id)

    async def get_finished(self, task_id: str) -> tuple[TaskDoc, int] | None:
        """A task's finished document, if it finished (None: it did not, or there is no such task).

        Raises:
            NatsStoreError: NATS did not answer, or the document is unreadable.
        """
        return await self._read(self.finished_key(task_id), task_id)

    async def _read(self, key: str, task_id: str) -> tuple[TaskDoc, int] | None:
        try:
            entry = await self._docs.get(key)
        except KeyNotFoundError:
            return None
        except NATS_ERRORS as error:
            raise NatsUnavailableError(f"cannot read task {task_id[:40]!r}: {error!r}") from error
        if entry.value is None or entry.revision is None:
            return None
        try:
            return decode_doc(entry.value), int(entry.revision)
        except (ValueError, KeyError, TypeError) as error:
            raise NatsStoreError(f"the document of task {task_id[:40]!r} is unreadable: {error!r}") from error

    async def _removed_at(self, subject: str) -> int | None:
        """The revision of the removal marker a live key ends with: 0 if it has none left, None if it ends with
        a document or with the marker of a finished document moved away (its id stays taken)."""
        try:
            last = await self._js.get_last_msg(self._docs_stream, subject)
        except NotFoundError:
            return 0
        except NATS_ERRORS as error:
            raise NatsUnavailableError(f"cannot read the last revision of {subject!r}: {error!r}") from error
        headers = last.headers or {}
        if headers.get(KV_OP) in (KV_DEL, KV_PURGE) and _MOVED_HEADER not in headers:
            return last.seq
        return None

    def finish_doc(self, doc: TaskDoc) -> asyncio.Future[Ack]:
        """Write a task's finished document to its finished key, once: the write that ends the task (a second
        end fails with `WrongLastSequenceError`). It expires as the retention says of its capability."""
        return self.writer.write(
            self._docs_prefix + self.finished_key(doc.task_id),
            encode_doc(doc),
            headers=self.expiry.finished_headers(doc.capability),
            expected_last_subject_sequence=0,
        )

    def purge_finished(self, task_id: str, revision: int) -> asyncio.Future[Ack]:
        """Purge a finished task's live key if `revision` is still its last (`WrongLastSequenceError` if not)."""
        return self.writer.write(
            self.doc_subject(task_id), b"", headers=self._moved_headers, expected_last_subject_sequence=revision
        )

    def purge_finished_soon(self, task_id: str, revision: int) -> None:
        """`purge_finished`, unacknowledged (`JetStreamWriter.send`): one that does not land leaves the live key
        to the partition's next holder, which finds the finished document and purges it then."""
        self.writer.send(
            self.doc_subject(task_id), b"", headers=self._moved_headers, expected_last_subject_sequence=revision
        )

    async def move_finished(self, doc: TaskDoc, revision: int) -> None:
        """Move a finished document out of its partition (see the module docstring): copied to its finished
        key (unless it is there), then its live key purged if `revision` is still its last. Made again, it does
        nothing more.

        Raises:
            NatsStoreError: NATS did not store a step (the steps done stay done: call it again).
        """
        with contextlib.suppress(WrongLastSequenceError):  # (copied, or finished there, before)
            await self.finish_doc(doc)
        with contextlib.suppress(WrongLastSequenceError):  # (purged before)
            await self.purge_finished(doc.task_id, revision)

    async def delete(self, task_id: str) -> None:
        """Remove a document (a task whose acceptance failed); gone already is fine. Its marker expires.

        Raises:
            NatsStoreError: NATS did not store the removal.
        """
        await self.writer.write(self.doc_subject(task_id), b"", headers=self._removed_headers)

    async def all_docs(self) -> list[TaskDoc]:
        """Every document, read in one pass over the bucket's stream (the last value of each key).

        Raises:
            NatsUnavailableError: NATS did not answer.
        """
        found: dict[str, TaskDoc] = {}
        async for message in last_values(self._js, self._docs_stream, self._docs_prefix + ">", what="the tasks"):
            if is_deletion(message) or not message.data:
                continue
            try:
                doc = decode_doc(message.data)
            except (ValueError, KeyError, TypeError) as error:
                logger.error("skipping an unreadable task document %s: %r", message.subject[:60], error)
                continue
            if doc.finished or doc.task_id not in found:  # (finishing, it is under both keys: the finished counts)
                found[doc.task_id] = doc
        return list(found.values())

    async def scan_partition(self, partition: int, seen: Callable[[Msg], None]) -> None:
        """Hear the last value of every document of a partition once (its unfinished tasks; deletion markers
        aside), then return.

        Raises:
            NatsUnavailableError: NATS did not answer (the documents heard so far were handed to `seen`).
        """
        subjects, what = self.partition_subjects(partition), f"partition {partition}"
        async for message in last_values(self._js, self._docs_stream, subjects, what=what):
            if is_deletion(message):
                continue
            try:
                seen(message)
            except Exception:  # one document's trouble must not stop the partition's
                logger.exception("a document of partition %d could not be handled", partition)

    def poke(self, partition: int, task_id: str) -> None:
        """Tell whoever holds a partition to read a task's document (one it does not run, or a cancel written
        into one it runs), with the next batch, unacknowledged: send it once the document is stored."""
        self.writer.send(f"{self._pokes}.{partition}", task_id.encode(errors="surrogatepass"))

    async def hear_pokes(self, heard: Callable[[int, str], None]) -> Subscription:
        """Hear every poke (any partition's): `heard(partition, task_id)`.

        Raises:
            NatsUnavailableError: the subscription could not be made.
        """

        async def poked(message: Msg) -> None:
            _, _, partition = message.subject.rpartition(".")
            try:
                heard(int(partition), message.data.decode(errors="surrogatepass"))
            except Exception:
                logger.exception("a poke on %r could not be handled", message.subject[:80])

        try:
            return await self.client.subscribe(f"{self._pokes}.*", cb=poked)
        except NATS_ERRORS as error:
            raise NatsUnavailableError(f"cannot hear the partitions' pokes: {error!r}") from error

    async def probe(self, *, timeout_seconds: float) -> None:
        """Return once the documents' stream answers within `timeout_seconds`.

        Raises:
            NatsUnavailableError: it did not.
        """
        try:
            async with asyncio.timeout(timeout_seconds):
                await self._docs.status()
        except NATS_ERRORS as error:
            raise NatsUnavailableError(f"the task documents do not answer: {error!r}") from error

    # ---- idempotency keys ----------------------------------------------------------------------------------

    async def expire_key(self, doc: TaskDoc) -> None:
        """Let a finished task's idempotency key expire with it (as the retention says of its capability), if it
        still names the task; nothing if it has none, or the retention keeps it for good.

        Raises:
            NatsStoreError: NATS did not answer, or did not store it.
        """
        headers = self.expiry.key_headers(doc.capability)
        if doc.idempotency_key and headers is not None:
            await self.letters.expire_key(doc.idempotency_key, doc.task_id, headers)

    # ---- updates -----------------------------------------------------------------------------------------

    def send_update(self, task_id: str, sequence: int, data: bytes) -> None:
        """Store update number `sequence` of a task with the next batch, unacknowledged (`JetStreamWriter.send`):
        after every write made before it, with nothing to wait for; lost if NATS does not take it."""
        # (no message id: nothing is sent twice, and a number two holders both sent is kept once by followers,
        # who keep only numbers above the last they had)
        self.writer.send(f"{SUBJECT_PREFIX}.{task_token(task_id)}", data, headers={SEQUENCE_HEADER: str(sequence)})

    def send_last_update(self, task_id: str, capability: str, sequence: int, data: bytes) -> None:
        """`send_update` for a finished task's last update: under a retention, a rollup of the task's updates
        (the earlier ones go at once) that expires with the task; without one, an update like the others."""
        expiring = self.expiry.last_update_headers(capability)
        if not expiring:
            self.send_update(task_id, sequence, data)
            return
        headers = {SEQUENCE_HEADER: str(sequence), **expiring}
        self.writer.send(f"{SUBJECT_PREFIX}.{task_token(task_id)}", data, headers=headers)

    # ---- dead letters ------------------------------------------------------------------------------------

    def put_dead_letter(self, task_id: str, entry: bytes) -> asyncio.Future[Ack]:
        """Keep a dead letter where every daemon reads it, for as long as the retention keeps dead letters."""
        return self.letters.put_dead_letter(task_id, entry, headers=self.expiry.letter_headers())


@functools.lru_cache(maxsize=8192)
def _token(task_id: str) -> str:
    # (any id fits; a task's are made several times over its life)
    return base64.urlsafe_b64encode(task_id.encode()).decode().rstrip("=") or "_"
