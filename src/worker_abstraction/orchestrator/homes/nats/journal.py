"""The journal of a replica sharing tasks with others: each fact a change of the task's shared document.

Where `StoreJournal` writes a daemon's facts to its own file, this one writes them to the task documents
every replica reads (`stores/jetstream/tasks.py`), as compare-and-set changes. Facts about an attempt
(reserved, dispatched, requeued, finished) are made only while this replica holds the task: a replica
whose lease ran out and whose task another one took over is refused (`StaleHolderError`), and its run's
outcome is dropped, so an attempt never counts twice. A cancel may come from any replica.

When a held task finishes, its document is finished first, then its last update is stored in the update
log, then its work leaves the queue (the lease is done): whoever takes it again after a crash in between
finds it finished and lets it go.

Facts written behind (nobody waits) are applied one after the other per task, in the order they happen;
`dispatching` is one of them that is waited for. Each is made under the hold the run had when it made it:
once that hold is lost (the lease lapsed, or another replica took the task) nothing more of that run's is
written. A write NATS does not answer (a cluster electing a leader takes seconds) is tried again, for up to
`WRITE_TRIES` seconds, before it is given up (and logged).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from worker_abstraction.errors import InvalidParametersError
from worker_abstraction.orchestrator.core.facts import Recorded, Resumable, tell
from worker_abstraction.orchestrator.core.state import task_record
from worker_abstraction.stores import serial
from worker_abstraction.stores.jetstream.connection import NatsStoreError
from worker_abstraction.stores.jetstream.tasks import DISPATCHED, FINISHED, QUEUED, StaleHolderError, TaskDoc, TaskDocs
from worker_abstraction.stores.tasks import Stored
from worker_abstraction.types import DeadLetter, TaskQuery, TaskRecord, TaskSpec, TaskStatus, latest_worker

logger = logging.getLogger(__name__)

WRITE_TRIES = 30  # one a second
_RETRY_PAUSE_SECONDS = 1.0


class Release(Protocol):
    async def __call__(self, task_id: str) -> None:
        """The held task finished and its document says so: let its work go."""


class HeldHere(Protocol):
    """A task this replica holds, as its journal sees it."""

    def alive(self) -> bool:
        """False once another replica may hold the task."""
        ...

    def lost(self, reason: str) -> None:
        """Another replica holds the task now (a change was refused): its run here stops."""
        ...


def _nothing_held(task_id: str) -> HeldHere | None:
    return None


class SharedJournal:
    """Writes the facts of the tasks this replica holds to their shared documents.

    Args:
        docs: the shared task documents.
        replica: this replica's name (the holder its changes are made for).
        release: called once a held task's document says it finished.
        reserved_at_acceptance: attempt numbers a new task's document reserves.
        holding: the hold this replica has on a task now (None: none known; its changes are fenced by the
            document's holder only).
    """

    def __init__(
        self,
        docs: TaskDocs,
        replica: str,
        release: Release,
        *,
        reserved_at_acceptance: int,
        holding: Callable[[str], HeldHere | None] = _nothing_held,
    ) -> None:
        self.docs = docs
        self.replica = replica
        self._release = release
        self._reserved_at_acceptance = reserved_at_acceptance
        self._holding = holding
        self._last: dict[str, asyncio.Task[None]] = {}  # per task: its latest write behind
        self._writes: set[asyncio.Task[None]] = set()

    async def accepted(self, spec: TaskSpec) -> None:
        await self.docs.create(
            TaskDoc(
                task_id=spec.task_id,
                request=serial.spec_bytes(spec),
                capability=spec.capability,
                accepted_at=spec.created_at_ns / 1e9,
                owner=spec.owner,
                idempotency_key=spec.options.idempotency_key,
                reserved=self._reserved_at_acceptance,
            )
        )

    def accepted_soon(self, spec: TaskSpec, then: Stored) -> None:
        stored = asyncio.ensure_future(self.accepted(spec))
        stored.add_done_callback(functools.partial(tell, then))

    def flush(self) -> None:
        return None

    async def reserve(self, task_id: str, up_to: int) -> None:
        reserve = functools.partial(_reserved, up_to=up_to)
        await self._held_change(task_id, reserve, self._holding(task_id))

    def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        self._behind(task_id, _sent(worker_id, worker_address, attempt))

    async def dispatching(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        await self._behind(task_id, _sent(worker_id, worker_address, attempt), awaited=True)

    def requeued(self, task_id: str, attempt: int, failures: int) -> None:
        def back(doc: TaskDoc) -> TaskDoc | None:
            if doc.finished:
                return None
            return replace(
                doc, state=QUEUED, worker_id="", worker_address="", attempt=max(doc.attempt, attempt), failures=failures
            )

        self._behind(task_id, back)

    async def cancel_requested(self, task_id: str, reason: str) -> None:
        await self._change(
            task_id, lambda d: None if d.finished or d.cancel_reason else replace(d, cancel_reason=reason)
        )

    def finished(self, task: Recorded) -> None:
        record = task.record()
        data = serial.record_bytes(record, encoded_params=task.spec.encoded_params)

        worker_id = latest_worker(record)  # (a task requeued then canceled was last sent to none: its attempt's)

        def end(doc: TaskDoc) -> TaskDoc | None:
            if doc.finished:
                return None
            return replace(
                doc,
                state=FINISHED,
                record=data,
                status=int(record.status),
                cancel_reason=record.cancel_reason,
                worker_id=worker_id,
            )

        self._behind(record.task_id, end, then=self._release)

    def dead_lettered(self, letter: DeadLetter) -> None:
        entry = serial.dead_letter_bytes(letter)
        self._write_behind(self._retrying(lambda: self.docs.put_dead_letter(letter.task_id, entry)))

    def dead_letters_removed(self, task_ids: Sequence[str]) -> None:
        for task_id in task_ids:  # (taken by this replica already when it requeued one: nothing left to take)
            self._write_behind(self._retrying(functools.partial(self.docs.take_dead_letter, task_id)))

    async def dead_letters(self) -> list[DeadLetter]:
        """Every replica's dead letters (those made here before they are stored included: drained first)."""
        await self.drain()
        letters = []
        for entry in await self.docs.dead_letters():
            try:
                letters.append(serial.dead_letter_of(entry))
            except (InvalidParametersError, ValueError) as error:
                logger.error("skipping an unreadable dead letter: %s", error)
        return letters

    async def purge_dead_letters(self, task_ids: Iterable[str] | None) -> int:
        """Drop shared dead letters (all, or those given); how many this call dropped."""
        await self.drain()
        ids = [letter.task_id for letter in await self.dead_letters()] if task_ids is None else list(task_ids)
        return sum([await self.docs.take_dead_letter(task_id) is not None for task_id in ids])

    async def take_dead_letter(self, task_id: str) -> DeadLetter | None:
        """Take a dead letter from the shared ones (of two replicas taking one at once, one gets it)."""
        await self.drain()
        entry = await self.docs.take_dead_letter(task_id)
        return None if entry is None else serial.dead_letter_of(entry)

    async def unfinished(self) -> list[Resumable]:
        return []  # shared tasks come back through the work queue, to whichever replica takes them

    async def finished_record(self, task_id: str) -> TaskRecord | None:
        found = await self.docs.get(task_id)
        if found is None or not found[0].finished or not found[0].record:
            return None
        return serial.record_of(found[0].record)

    async def finished_by_key(self, idempotency_key: str) -> TaskRecord | None:
        task_id = await self.docs.key_holder(idempotency_key)
        return await self.finished_record(task_id) if task_id else None

    async def submission(self, task_id: str) -> TaskSpec | None:
        found = await self.docs.get(task_id)
        return None if found is None else serial.spec_of(found[0].request)

    async def finished_records(self, query: TaskQuery, *, limit: int, offset: int) -> list[TaskRecord]:
        """Records of every shared task that match `query`, most recently accepted first: finished ones as they
        ended, the others as their documents stand (PENDING or RUNNING, wherever they run), so a listing
        through any daemon shows them all."""
        await self.drain()
        found = [doc async for doc in self.docs.all() if _matches(query, doc)]
        found.sort(key=lambda doc: (-doc.accepted_at, doc.task_id))
        return [record_of(doc) for doc in found[offset : offset + limit]]

    async def drain(self) -> None:
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    def abandon(self) -> None:
        """Give up on the writes still pending (the replica stops without them: see `NatsHome.aclose`)."""
        for write in list(self._writes):
            write.cancel()

    def _behind(
        self,
        task_id: str,
        apply: Callable[[TaskDoc], TaskDoc | None],
        *,
        then: Callable[[str], object] | None = None,
        awaited: bool = False,
    ) -> asyncio.Task[None]:
        """Apply a held task's fact after its earlier ones; `awaited`: the caller waits, and hears its error."""
        previous = self._last.get(task_id)
        hold = self._holding(task_id)  # the hold the fact was made under: written only while it lasts

        async def write() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)  # this task's facts, in order
            try:
                await self._held_change(task_id, apply, hold)
            except StaleHolderError as error:
                if awaited:
                    raise
                logger.info("%s; this replica's run of it is dropped", error)
                return
            except NatsStoreError as error:
                if awaited:
                    raise
                logger.error("a fact of task %s was not written: %s", task_id, error)
                return
            if then is not None:
                done = then(task_id)
                if asyncio.iscoroutine(done):
                    await done

        task = asyncio.ensure_future(write())
        self._last[task_id] = task
        self._writes.add(task)
        task.add_done_callback(lambda written: self._written(task_id, written))
        return task

    async def _held_change(
        self, task_id: str, apply: Callable[[TaskDoc], TaskDoc | None], hold: HeldHere | None
    ) -> None:
        """A change made on behalf of this replica's hold on the task: refused once the hold is lost."""
        if hold is not None and not hold.alive():
            hold.lost("its hold was lost")
            raise StaleHolderError(task_id, self.replica, "another replica (this one's hold was lost)")
        try:
            await self._change(task_id, apply, holder=self.replica)
        except StaleHolderError as error:
            if hold is not None:
                hold.lost(str(error))
            raise

    async def _retrying(self, write: Callable[[], Awaitable[object]]) -> None:
        for attempt in range(1, WRITE_TRIES + 1):
            try:
                await write()
                return
            except NatsStoreError as error:
                if attempt == WRITE_TRIES:
                    logger.error("a dead-letter write was not made: %s", error)
                    return
                await asyncio.sleep(_RETRY_PAUSE_SECONDS)

    def _write_behind(self, write: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _change(
        self, task_id: str, apply: Callable[[TaskDoc], TaskDoc | None], *, holder: str | None = None
    ) -> TaskDoc | None:
        for attempt in range(1, WRITE_TRIES + 1):
            try:
                return await self.docs.change(task_id, apply, holder=holder)
            except StaleHolderError:
                raise
            except NatsStoreError:
                if attempt == WRITE_TRIES:
                    raise
                await asyncio.sleep(_RETRY_PAUSE_SECONDS)
        return None  # (not reached)

    def _written(self, task_id: str, written: asyncio.Task[None]) -> None:
        self._writes.discard(written)
        if not written.cancelled():
            written.exception()  # (an awaited fact's error is its waiter's; retrieved here should it be gone)
        if self._last.get(task_id) is written:
            del self._last[task_id]


def _reserved(doc: TaskDoc, *, up_to: int) -> TaskDoc:
    return replace(doc, reserved=max(doc.reserved, up_to))


def _sent(worker_id: str, worker_address: str, attempt: int) -> Callable[[TaskDoc], TaskDoc | None]:
    """The change `dispatched` makes: sent to that worker (unless the task finished)."""

    def sent(doc: TaskDoc) -> TaskDoc | None:
        if doc.finished:
            return None
        attempt_now = max(doc.attempt, attempt)
        return replace(
            doc,
            state=DISPATCHED,
            worker_id=worker_id,
            worker_address=worker_address,
            attempt=attempt_now,
            dispatched_at=time.time(),
        )

    return sent


def record_of(doc: TaskDoc) -> TaskRecord:
    """A shared task's record: as it ended, or as its document stands (PENDING, or RUNNING once sent)."""
    if doc.finished and doc.record:
        return serial.record_of(doc.record)
    spec = serial.spec_of(doc.request)
    return task_record(spec, TaskStatus(_status_of(doc)), cancel_reason=doc.cancel_reason)


def _matches(query: TaskQuery, doc: TaskDoc) -> bool:
    """`query.matches` on a document's own fields, without decoding its record (accepted_at is the task's
    creation time; worker_id the worker it was last sent to, which is its latest attempt's once finished)."""
    since, until = query.since_seconds, query.until_seconds
    return (
        (not query.statuses or _status_of(doc) in query.statuses)
        and (not query.capability or doc.capability == query.capability)
        and (query.owner is None or doc.owner == query.owner)
        and (not query.worker_id or doc.worker_id == query.worker_id)
        and (not query.task_id_prefix or doc.task_id.startswith(query.task_id_prefix))
        and (since is None or doc.accepted_at >= since)
        and (until is None or doc.accepted_at < until)
    )


def _status_of(doc: TaskDoc) -> int:
    if doc.finished:
        return doc.status
    return int(TaskStatus.RUNNING if doc.state == DISPATCHED else TaskStatus.PENDING)
