"""Takeover: how a `PartitionedHome` takes on the tasks of the partitions it holds.

A held partition is read when gained, after a reconnection and every `RESCAN_SECONDS`; between those reads
a poke says which document another daemon wrote into. A document this daemon does not run is claimed
(compare-and-set: its holder becomes this daemon) and run: from the start if nobody held it before, else
resumed from it, unless it finished already (its live key is purged then) or it was taken over `max_takes`
times from daemons that did not give it back (it ends FAILED as a dead letter).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from typing import TYPE_CHECKING

from nats.aio.msg import Msg

from worker_abstraction.orchestrator.core.state import task_record
from worker_abstraction.orchestrator.homes.nats.partitioned_facts import TaskFacts, holder_token, resumable
from worker_abstraction.stores import serial
from worker_abstraction.stores.availability import Backoff, raise_if_cancelled
from worker_abstraction.stores.jetstream.connection import NatsStoreError, NatsUnavailableError
from worker_abstraction.stores.jetstream.pipeline import WrongLastSequenceError
from worker_abstraction.stores.jetstream.tasks import FINISHED, QUEUED, TaskDoc, decode_doc
from worker_abstraction.types import DeadLetter, TaskStatus, TaskUpdate

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome

logger = logging.getLogger(__name__)

RESCAN_SECONDS = 30.0  # how often a held partition is read again (what a lost poke left unheard)
_RETRY_FIRST_SECONDS = 0.1
_RETRY_CAP_SECONDS = 5.0
_NO_CANCEL = b'"cancel_reason":""'  # (as the documents are encoded: compact JSON)
_FINISHED = b'"state":"finished"'
_NO_DECISION = b'"decision":""'


class Takeover:
    """Taking on the tasks of `home`'s partitions (module docstring); it keeps which are being claimed."""

    def __init__(self, home: PartitionedHome) -> None:
        self._home = home
        self._adopting: set[str] = set()

    def adopting(self, task_id: str) -> bool:
        """Whether a task is being claimed here now."""
        return task_id in self._adopting

    async def watching(self, partition: int, epoch: int) -> None:
        """Read the partition's documents now and every `RESCAN_SECONDS`, for as long as it is held under
        `epoch` (cancel to stop)."""
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        while self._home._alive(partition, epoch):
            raise_if_cancelled()
            try:
                await self._home.store.scan_partition(partition, functools.partial(self.seen, partition, epoch))
            except NatsUnavailableError as error:
                self._home.availability.failed(error)
                await asyncio.sleep(backoff.pause())
                continue
            except Exception:  # a bug, or an error nobody foresaw: the partition is read again all the same
                logger.exception("reading partition %d failed; reading it again", partition)
                await asyncio.sleep(backoff.pause())
                continue
            backoff.reset()
            await asyncio.sleep(RESCAN_SECONDS)

    def poked(self, partition: int, task_id: str) -> None:
        """Another daemon wrote into a document of a partition: read it if that partition is held here."""
        leases = self._home.leases
        epoch = leases.epoch(partition) if leases is not None else None
        if epoch is None or partition != self._home.store.partition(task_id):
            return
        self._home._spawn(self._read_poked(partition, epoch, task_id))

    async def _read_poked(self, partition: int, epoch: int, task_id: str) -> None:
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        while self._home._alive(partition, epoch):
            raise_if_cancelled()
            try:
                found = await self._home.store.get_live(task_id)
                break
            except NatsUnavailableError as error:
                self._home.availability.failed(error)
                await asyncio.sleep(backoff.pause())
        else:
            return
        if found is None or not self._home._alive(partition, epoch):
            return
        doc, revision = found
        facts = self._home.journal.facts(task_id)
        if facts is None:
            self.consider(partition, epoch, doc, revision)
        else:
            if doc.cancel_reason and not facts.doc.cancel_reason:
                facts.doc = dataclasses.replace(facts.doc, cancel_reason=doc.cancel_reason)
                self._home._cancel_run(task_id, doc.cancel_reason)
            if doc.decision and not facts.doc.decision:
                facts.doc = dataclasses.replace(facts.doc, decision=doc.decision)
                self._home._decide_run(task_id, doc.decision)

    def seen(self, partition: int, epoch: int, message: Msg) -> None:
        """A document of a held partition, as stored: a task to take on, a cancel for one run here, or a
        finished one to move out of the partition."""
        if not self._home._alive(partition, epoch):
            return
        task_id = self._home.store.task_id_of(message.subject)
        if task_id is None:
            return
        data = message.data
        facts = self._home.journal.facts(task_id)
        if facts is not None:
            if _NO_CANCEL not in data and not facts.doc.cancel_reason:
                reason = decode_doc(data).cancel_reason
                if reason:
                    facts.doc = dataclasses.replace(facts.doc, cancel_reason=reason)
                    self._home._cancel_run(task_id, reason)
            if _NO_DECISION not in data and not facts.doc.decision:
                decision = decode_doc(data).decision
                if decision:
                    facts.doc = dataclasses.replace(facts.doc, decision=decision)
                    self._home._decide_run(task_id, decision)
            return
        if task_id in self._home.intake.accepting or task_id in self._adopting:
            return
        if _FINISHED in data and self._home.journal.moved(task_id):
            return  # (the echo of a run's own end, most often: not decoded)
        self.consider(partition, epoch, decode_doc(data), message.metadata.sequence.stream)

    def consider(self, partition: int, epoch: int, doc: TaskDoc, revision: int) -> None:
        """A document of a held partition that no run here holds: move it if finished, else take it on."""
        task_id = doc.task_id
        if doc.finished:
            self._home.journal.move(doc, revision)
            return
        if (
            self._home.journal.facts(task_id) is not None
            or task_id in self._home.intake.accepting
            or task_id in self._adopting
        ):
            return
        if doc.holder == holder_token(self._home.replica, epoch) and task_id not in self._home.intake.abandoned:
            return  # (one this daemon runs, ran, or gave up on)
        self._adopting.add(task_id)
        self._home._spawn(self._adopt(partition, epoch, doc, revision))

    async def _adopt(self, partition: int, epoch: int, doc: TaskDoc, revision: int) -> None:
        """Claim a task of a held partition (its holder becomes this daemon), then run it here; while NATS does
        not answer, try again (from its document as it then stands) for as long as the partition is held: a
        task claimed here and not run would wait for the partition to move."""
        task_id = doc.task_id
        abandoned = self._home.intake.abandoned.pop(task_id, None) is not None  # (made here, never run: from its start)
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        try:
            while self._home._alive(partition, epoch):
                raise_if_cancelled()
                try:
                    await self._adopt_once(partition, epoch, doc, revision, abandoned=abandoned)
                    return
                except NatsStoreError as error:
                    self._home.availability.failed(error)
                    logger.warning("task %s could not be taken on yet: %s; trying again", task_id, error)
                    await asyncio.sleep(backoff.pause())
                try:
                    found = await self._home.store.get(task_id)
                except NatsStoreError:
                    continue  # (with the document as last read)
                if found is None or found[0].finished:
                    return
                doc, revision = found
        finally:
            self._adopting.discard(task_id)

    async def _adopt_once(self, partition: int, epoch: int, doc: TaskDoc, revision: int, *, abandoned: bool) -> None:
        task_id, token = doc.task_id, holder_token(self._home.replica, epoch)
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        while True:
            if not self._home._alive(partition, epoch):
                return
            raise_if_cancelled()
            taken = 1 if doc.holder and not doc.released else 0  # (from a daemon that died, or was cut off)
            claimed = dataclasses.replace(doc, holder=token, takes=doc.takes + taken, released=False)
            try:
                revision = await self._home.store.update_doc(claimed, revision)
                break
            except WrongLastSequenceError:
                found = await self._home.store.get(task_id)  # (written meanwhile: a cancel, or our claim landed)
            except NatsUnavailableError as error:
                self._home.availability.failed(error)
                await asyncio.sleep(backoff.pause())
                continue
            if found is None or found[0].finished:
                return
            if found[0].holder == token and not abandoned:
                claimed, revision = found
                break
            doc, revision = found
        fresh = (not doc.holder or abandoned) and not doc.cancel_reason and doc.state == QUEUED and not doc.attempt
        if not fresh:  # its holder may have finished it and died before its live key was purged
            ended = await self._home.store.get_finished(task_id)
            if ended is not None:
                self._home.journal.move(ended[0], revision, stored=True)
                return
            if claimed.takes >= self._home.max_takes:
                await self._fail_exhausted(claimed, revision)
                return
        spec = serial.spec_of(doc.request)
        base = 0 if fresh else await self._home.store.log.last(task_id)
        if not self._home._may_run(partition, epoch) or self._home._runs is None:
            self._home.store.poke(partition, task_id)  # (the next holder carries it on: it may have read it before)
            return
        resume = None if fresh else resumable(spec, doc)
        self._home._runs.announce(
            self._home._run(spec, TaskFacts(claimed, revision, partition, epoch, base=base), resume)
        )

    async def _fail_exhausted(self, doc: TaskDoc, revision: int) -> None:
        """End a task taken over `max_takes` times FAILED, as a dead letter (its record says why).

        Raises:
            NatsStoreError: NATS did not store its end (the caller tries again, from its document).
        """
        task_id = doc.task_id
        message = f"taken over {doc.takes} times and never finished: every daemon that held it stopped"
        update = TaskUpdate(task_id=task_id, status=TaskStatus.FAILED, error_message=message)
        spec = serial.spec_of(doc.request)
        record = task_record(spec, TaskStatus.FAILED, last_update=update, dead_lettered=True)
        data = serial.record_bytes(record, encoded_params=spec.encoded_params)
        ended = dataclasses.replace(doc, state=FINISHED, record=data, status=int(TaskStatus.FAILED))
        try:
            await self._home.store.finish_doc(ended)
        except WrongLastSequenceError:  # (it ended meanwhile)
            self._home.journal.move(ended, revision, stored=True)
            return
        self._home.journal.move(ended, revision, stored=True)
        # Requeued as it was submitted (a new id, no old key), like any dead letter.
        options = dataclasses.replace(spec.options, task_id="", idempotency_key="")
        self._home.journal.dead_lettered(
            DeadLetter(task_id, spec.capability, dict(spec.params), (), message, options, spec.owner)
        )
        sequence = await self._home.store.log.last(task_id) + 1
        self._home.store.send_last_update(
            task_id, doc.capability, sequence, serial.update_bytes(update, sequence=sequence)
        )
        logger.error("task %s failed: %s", task_id, message)
