"""PartitionedJournal: the facts of the tasks one daemon runs in the partitions it holds, written behind.

Each task this daemon holds has a `TaskFacts`: its document as this daemon last made it, and the revision
NATS last confirmed. A fact changes that document at once and is written as a compare-and-set on the known
revision (no read first) through the store's writer, so the facts of every task made in one turn of the
loop share one socket write. A task's writes go one at a time, in order: facts made while its write is
on its way are folded into the next one (one write for all of them). `reserve`, `dispatching` and
`cancel_requested` are awaited (see `homes/journal.py` for why); the rest is not.

Fencing: every document this daemon writes names it as its holder for one epoch of the task's partition
(`holder_token`), and a write goes out only while the partition's lease holds under that epoch. A
compare-and-set that fails is read back: a document that names another holder (a daemon that took the
partition over claimed it), or is finished, or gone, ends this daemon's hold (the run stops at once); one
that still names this holder was changed by a cancel from another daemon (taken in, and the run told), or
is this daemon's own write whose acknowledgement was lost: the write is made again on that revision (or, if
it was the task's end, counts as written).

Updates: a task's updates go to the update log through the writer as they are made, unacknowledged
(`PartitionedStore.send_update`): in their order, after every write made before them, with nothing waited
for and nothing tried again. One NATS did not take is missed by followers on another daemon only (the run's
own handle has them all); they read the task's document when the log stays silent, so they still hear its
end. A finished task's last update goes to the log only once its finished document is stored, so a watcher
never sees an end that the document does not record; and after the others, so it is the last one stored.

Retention (`partitioned_expiry`): a finished document carries its TTL; its last update is a rollup with
the same TTL; its idempotency key is written again with one once the end is stored
(`partitioned_housekeeping`); dead letters carry theirs.

A task ends with its finished document written to its finished key (`PartitionedStore.finish_doc`: once,
whoever writes it; the write that counts), not over its live document. Its live key is purged next,
fenced by the revision this daemon last wrote, unacknowledged (`purge_finished_soon`), so a daemon that gains
the partition later replays only what is unfinished (`partitioned_housekeeping` moves the document of a
task that ended elsewhere, or was left in its partition). The purge is housekeeping after the fact: one that did
not happen (the daemon died, NATS did not take it) is made by whoever holds the partition next, which looks
for a task's finished document before it runs a task it takes on (`PartitionedHome`), and purges its live
key instead.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from worker_abstraction import _convert
from worker_abstraction.orchestrator.core.facts import Recorded, tell
from worker_abstraction.orchestrator.homes.nats.partitioned_facts import (
    TaskFacts,
    fail,
    given_back,
    new_doc,
    sent_to,
    succeed,
)
from worker_abstraction.orchestrator.homes.nats.partitioned_housekeeping import Housekeeping
from worker_abstraction.orchestrator.homes.nats.partitioned_reads import JournalReads
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStore
from worker_abstraction.stores.availability import Backoff, StoreAvailability
from worker_abstraction.stores.jetstream.connection import NatsStoreError, NatsUnavailableError
from worker_abstraction.stores.jetstream.pipeline import Ack, WrongLastSequenceError
from worker_abstraction.stores.jetstream.tasks import FINISHED, QUEUED, StaleHolderError, TaskDoc
from worker_abstraction.stores.tasks import Stored
from worker_abstraction.types import DeadLetter, TaskSpec, TaskUpdate, latest_worker

logger = logging.getLogger(__name__)

_RETRY_FIRST_SECONDS = 0.1
_RETRY_CAP_SECONDS = 2.0


class PartitionedJournal(JournalReads):
    """The journal of the tasks a `PartitionedHome` holds (a `homes.journal.Journal`).

    Args:
        store: where documents, updates and dead letters are written.
        alive: whether a partition is still held under an epoch (writes go out only then).
        availability: told of NATS answering or not.
        lost: told of a task no longer held here (after its hold was lost).
        cancelled: told of a cancel another daemon wrote into a held task's document (task id, reason).
    """

    def __init__(
        self,
        store: PartitionedStore,
        *,
        alive: Callable[[int, int], bool],
        availability: StoreAvailability,
        lost: Callable[[TaskFacts], None],
        cancelled: Callable[[str, str], None],
    ) -> None:
        self._store = store
        self._alive = alive
        self._availability = availability
        self._lost = lost
        self._cancelled = cancelled
        self._tasks: dict[str, TaskFacts] = {}
        self._partitions: dict[int, dict[str, TaskFacts]] = {}
        self._inflight: set[asyncio.Future[Ack]] = set()
        self._house = Housekeeping(store, availability)

    # ---- the home's side ----------------------------------------------------------------------------------

    def held(self, facts: TaskFacts) -> None:
        """Start writing a task's facts (its hold made, or about to be)."""
        self._tasks[facts.task_id] = facts
        self._partitions.setdefault(facts.partition, {})[facts.task_id] = facts

    def facts(self, task_id: str) -> TaskFacts | None:
        return self._tasks.get(task_id)

    def of_partition(self, partition: int) -> list[TaskFacts]:
        return list(self._partitions.get(partition, {}).values())

    def counts(self) -> dict[int, int]:
        """Tasks held, by partition."""
        return {partition: len(tasks) for partition, tasks in self._partitions.items() if tasks}

    def sink(self, facts: TaskFacts) -> Callable[[int, TaskUpdate], None]:
        """Where the run's updates go: the update log, numbered after `facts.base`."""
        return functools.partial(self._updated, facts)

    def move(self, doc: TaskDoc, revision: int, *, stored: bool = False) -> None:
        """Move a finished document out of its partition (`Housekeeping.move`)."""
        self._house.move(doc, revision, stored=stored)

    def moved(self, task_id: str) -> bool:
        """Whether a task's finished document is being moved, or was lately (by this daemon)."""
        return self._house.moved(task_id)

    @property
    def moving(self) -> int:
        """Finished documents being moved out of their partitions now."""
        return self._house.moving

    def hold_lost(self, facts: TaskFacts, reason: str) -> None:
        """The run's hold was lost (seen by the run, or told by the home): nothing more is written for it,
        unless its partition is being released (then what it wrote before goes out first)."""
        if not facts.releasing:
            self.lose(facts, reason)

    def lose(self, facts: TaskFacts, reason: str) -> None:
        """No longer held here: drop what is not written yet, and stop the run."""
        if facts.gone:
            return
        facts.gone = True
        self._forget(facts)
        if isinstance(facts.retrying, asyncio.TimerHandle):
            facts.retrying.cancel()
        facts.retrying = None
        fail(facts.waiting, StaleHolderError(facts.task_id, facts.holder, "another daemon (this one's hold was lost)"))
        facts.waiting = []
        if facts.hold is not None:
            facts.hold.lose(reason)
        self._settle(facts)
        self._lost(facts)

    async def release(self, partition: int, timeout_seconds: float) -> None:
        """Stop the runs of a partition being given up, let what they wrote reach NATS (for up to
        `timeout_seconds`), then drop them."""
        group = self.of_partition(partition)
        for facts in group:
            facts.releasing = True
            if facts.hold is not None:
                facts.hold.lose("its partition moved to another daemon")
            self._behind(facts.task_id, given_back)  # (its next holder does not count it as taken over)
        waits = [self._settled(facts) for facts in group]
        if waits:
            try:
                async with asyncio.timeout(timeout_seconds):
                    await asyncio.gather(*waits)
            except TimeoutError:
                logger.warning("partition %d released before every fact of its tasks was stored", partition)
        for facts in group:
            self.lose(facts, "its partition moved to another daemon")

    # ---- Journal ------------------------------------------------------------------------------------------

    async def accepted(self, spec: TaskSpec) -> None:
        """Store a new task for whichever daemon holds its partition (it takes it from there)."""
        await self._store.create_doc(new_doc(spec, ""))

    def accepted_soon(self, spec: TaskSpec, then: Stored) -> None:
        stored = asyncio.ensure_future(self.accepted(spec))
        stored.add_done_callback(functools.partial(tell, then))

    def flush(self) -> None:
        return None

    async def reserve(self, task_id: str, up_to: int) -> None:
        await self._awaited(task_id, lambda doc: replace(doc, reserved=max(doc.reserved, up_to)))

    def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        self._behind(task_id, sent_to(worker_id, worker_address, attempt))

    async def dispatching(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        await self._awaited(task_id, sent_to(worker_id, worker_address, attempt))

    def requeued(self, task_id: str, attempt: int, failures: int) -> None:
        def back(doc: TaskDoc) -> TaskDoc:
            return replace(
                doc, state=QUEUED, worker_id="", worker_address="", attempt=max(doc.attempt, attempt), failures=failures
            )

        self._behind(task_id, back)

    async def answered(self, task_id: str, answers: str) -> None:
        await self._awaited(task_id, lambda doc: replace(doc, answers=answers))

    async def cancel_requested(self, task_id: str, reason: str) -> None:
        await self._awaited(task_id, lambda doc: replace(doc, cancel_reason=doc.cancel_reason or reason))

    def finished(self, task: Recorded) -> None:
        record = task.record()
        data = _convert.record_to_pb(record, encoded_params=task.spec.encoded_params).SerializeToString()
        worker_id = latest_worker(record)

        def end(doc: TaskDoc) -> TaskDoc:
            return replace(
                doc,
                state=FINISHED,
                record=data,
                status=int(record.status),
                cancel_reason=record.cancel_reason,
                worker_id=worker_id,
            )

        self._behind(record.task_id, end)

    def dead_lettered(self, letter: DeadLetter) -> None:
        entry = _convert.dead_letter_to_pb(letter).SerializeToString()
        self._house.spawn(
            self._house.retried(lambda: self._store.put_dead_letter(letter.task_id, entry), "keep a dead letter")
        )

    def dead_letters_removed(self, task_ids: Sequence[str]) -> None:
        for task_id in task_ids:
            take = functools.partial(self._store.letters.take_dead_letter, task_id)
            self._house.spawn(self._house.retried(take, "remove a dead letter"))

    async def drain(self) -> None:
        """Wait for every write on its way (dead letters and retries included)."""
        for _ in range(100):
            pending: list[asyncio.Future[Any]] = [*self._inflight, *self._house.background]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    async def aclose(self) -> None:
        await self._house.aclose()
        for facts in list(self._tasks.values()):
            self.lose(facts, "the daemon stopped")

    # ---- writing a task's document -----------------------------------------------------------------------

    def _behind(self, task_id: str, apply: Callable[[TaskDoc], TaskDoc]) -> TaskFacts | None:
        """Apply a fact to a held task's document and write it (after the write on its way, if any)."""
        facts = self._tasks.get(task_id)
        if facts is None or facts.gone or facts.doc.finished:
            return None
        facts.doc = apply(facts.doc)
        self._send(facts)
        return facts

    async def _awaited(self, task_id: str, apply: Callable[[TaskDoc], TaskDoc]) -> None:
        """`_behind`, returning once the write that holds the fact is stored.

        Raises:
            StaleHolderError: the task is not held here (any more).
            NatsStoreError: it could not be written.
        """
        facts = self._tasks.get(task_id)
        if facts is None or facts.gone or facts.doc.finished:
            raise StaleHolderError(task_id, "this daemon", "another daemon (it is not held here)")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        facts.waiting.append(waiter)
        self._behind(task_id, apply)
        await waiter

    def _send(self, facts: TaskFacts) -> None:
        if facts.gone:
            return
        if facts.sending or facts.retrying is not None:
            facts.dirty = True
            return
        if not self._alive(facts.partition, facts.epoch):
            self.lose(facts, "its partition's lease lapsed")
            return
        facts.sending, facts.dirty = True, False
        waiters, facts.waiting = facts.waiting, []
        finished = facts.doc.finished
        if finished:
            written = self._store.finish_doc(facts.doc)
        else:
            written = self._store.write_doc(facts.task_id, facts.doc, facts.revision)
        self._inflight.add(written)
        written.add_done_callback(functools.partial(self._written, facts, waiters, finished))

    def _written(
        self, facts: TaskFacts, waiters: list[asyncio.Future[None]], finished: bool, written: asyncio.Future[Ack]
    ) -> None:
        self._inflight.discard(written)
        facts.sending = False
        error = NatsUnavailableError("the write was cancelled") if written.cancelled() else written.exception()
        if facts.gone:
            fail(waiters, StaleHolderError(facts.task_id, facts.holder, "another daemon (this one's hold was lost)"))
            return
        if error is None:
            if not finished:  # (a finished document is not on the live key: the purge is fenced by the last)
                facts.revision = written.result().seq
            facts.backoff = None
            succeed(waiters)
            if facts.dirty:
                self._send(facts)
            elif finished:
                self._ended(facts)
            self._settle(facts)
            return
        facts.waiting = waiters + facts.waiting
        if isinstance(error, WrongLastSequenceError):
            recovering = asyncio.ensure_future(self._read_back(facts))
            facts.retrying = recovering
            self._house.keep(recovering)
        elif isinstance(error, NatsUnavailableError):
            self._availability.failed(error)
            facts.backoff = facts.backoff or Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
            facts.retrying = asyncio.get_running_loop().call_later(facts.backoff.pause(), self._retry, facts)
        else:  # refused for good (too large, say): the task cannot be kept; its run stops
            logger.error("the document of task %s cannot be written: %s", facts.task_id, error)
            fail(facts.waiting, error if isinstance(error, NatsStoreError) else NatsStoreError(repr(error)))
            facts.waiting = []
            self.lose(facts, f"its document cannot be written: {error}")

    def _retry(self, facts: TaskFacts) -> None:
        facts.retrying = None
        self._send(facts)

    async def _read_back(self, facts: TaskFacts) -> None:
        """A compare-and-set of the task's document failed: see who wrote it (module docstring)."""
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        landed = False
        try:
            while True:
                if facts.gone:
                    return
                if not self._alive(facts.partition, facts.epoch):
                    self.lose(facts, "its partition's lease lapsed")
                    return
                try:
                    if facts.doc.finished:  # (its end lost a race, or its acknowledgement was lost)
                        found = await self._store.get_finished(facts.task_id)
                    else:
                        found = await self._store.get(facts.task_id)
                    break
                except NatsUnavailableError as error:
                    self._availability.failed(error)
                    await asyncio.sleep(backoff.pause())
            if facts.gone:
                return
            if found is None and not facts.doc.finished:
                self.lose(facts, "its document is gone")
                return
            if found is not None:  # (a finished document not found after all is written again)
                doc, revision = found
                landed = doc.holder == facts.holder and doc.finished and facts.doc.finished
                if doc.holder != facts.holder or (doc.finished and not landed):
                    if doc.finished and facts.doc.finished:  # ended elsewhere: its live key, still ours, goes
                        self.move(doc, facts.revision, stored=True)
                    self.lose(facts, f"another daemon holds it now ({doc.holder or 'finished'})")
                    return
                if doc.cancel_reason and not facts.doc.cancel_reason:
                    facts.doc = replace(facts.doc, cancel_reason=doc.cancel_reason)
                    self._cancelled(facts.task_id, doc.cancel_reason)
                if not landed:
                    facts.revision = revision
        finally:
            if facts.retrying is asyncio.current_task():
                facts.retrying = None
        if landed:  # this daemon's own end was stored, its acknowledgement lost (NATS stalled, say): it is written
            succeed(facts.waiting)
            facts.waiting = []
            self._ended(facts)
        else:
            self._send(facts)
        self._settle(facts)

    def _ended(self, facts: TaskFacts) -> None:
        """Its finished document is stored: its last update goes to the log (after the others), it is no longer
        held, and its document moves out of the partition."""
        self._forget(facts)
        doc = facts.doc
        if facts.last is not None:
            sequence, data = facts.last
            self._store.send_last_update(facts.task_id, doc.capability, sequence, data)
            facts.published = max(facts.published, sequence)
        self._store.purge_finished_soon(facts.task_id, facts.revision)
        self._house.expire_key(doc)

    # ---- updates ------------------------------------------------------------------------------------------

    def _updated(self, facts: TaskFacts, position: int, update: TaskUpdate) -> None:
        if facts.gone or not self._alive(facts.partition, facts.epoch):
            return
        sequence = facts.base + position
        data = _convert.update_to_pb(update, sequence=sequence).SerializeToString()
        if update.is_terminal:
            facts.last = (sequence, data)  # (published once the finished document is stored)
        else:
            self._store.send_update(facts.task_id, sequence, data)
            facts.published = max(facts.published, sequence)

    # ---- inside -------------------------------------------------------------------------------------------

    def _forget(self, facts: TaskFacts) -> None:
        if self._tasks.get(facts.task_id) is facts:
            del self._tasks[facts.task_id]
        group = self._partitions.get(facts.partition)
        if group is not None and group.get(facts.task_id) is facts:
            del group[facts.task_id]
            if not group:
                del self._partitions[facts.partition]

    def _settled(self, facts: TaskFacts) -> asyncio.Future[None]:
        if facts.settled is None:
            facts.settled = asyncio.get_running_loop().create_future()
        self._settle(facts)
        return facts.settled

    def _settle(self, facts: TaskFacts) -> None:
        settled = facts.settled
        if settled is not None and not settled.done() and (facts.quiet or facts.gone):
            settled.set_result(None)
