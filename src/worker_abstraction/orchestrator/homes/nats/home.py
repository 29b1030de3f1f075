"""NatsHome: one replica's part in the tasks several orchestrator daemons share on NATS JetStream.

Every replica accepts tasks, and every replica runs them; which one runs a task is decided by the work
queue, not by which one accepted it (see `stores/jetstream`):

- **Accepting.** The task's document is created (its id, or its idempotency key, claimed once across the
  replicas), then its key is put in the work queue under its capability; only then does the caller hear
  "accepted". The caller's handle follows the task's updates in the update log, wherever it runs.
- **Taking.** For each capability its live workers offer, the replica takes work from the queue while it
  has fewer than `prefetch` tasks of that capability waiting for a worker, so a replica with free workers
  takes more and none hoards. A task taken is held on a lease the queue keeps alive; the replica makes
  itself the document's holder and runs the task as a daemon resumes one after a restart: from the start
  if nobody held it before, or from where the previous holder's document says it got, with attempt
  numbers above any the previous holder may have sent. Its updates go to the update log, numbered after
  the last one kept.
- **Losing a hold.** A lease that lapsed (not kept alive in time: the replica was paused, or cut off from
  NATS) or a document another replica took over ends this replica's hold on the task: its run stops at
  once (`TaskRun.hand_over`), and from then on writes nothing to the document, publishes no update and
  leaves the attempt on its worker to the new holder, which follows it there or retries it under a higher
  number. The work is never acknowledged nor given back by a replica that lost it.
- **Finishing.** The document is finished (by compare-and-set: one replica's outcome counts), the last
  update is stored, then the lease is done. A replica that dies loses its leases; its tasks go to the
  others within the lease time and carry on there.
- **Cancelling.** From any replica: the cancel is written to the document and announced to the others; the
  holder cancels its run (and a replica that takes the task later finds the cancel in its document).
- **Exhausted work** (delivered `max_deliveries` times and never finished: its holders kept dying) ends
  FAILED, its document and its last update saying why, and becomes a dead letter.
- **Dead letters** of every replica are kept in NATS (`wa_dead_letters`): listed, requeued (taken by one
  replica only) and purged through any.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from worker_abstraction.errors import TaskExistsError, WorkerAbstractionError
from worker_abstraction.orchestrator.core.facts import ATTEMPT_BLOCK, Resumable
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Acceptance, Accepted, Admit, Hold, Runs
from worker_abstraction.orchestrator.core.records import finished_handle
from worker_abstraction.orchestrator.core.state import task_record
from worker_abstraction.orchestrator.homes.nats.journal import SharedJournal, record_of
from worker_abstraction.orchestrator.homes.nats.relay import UpdatePublisher, followed_handle
from worker_abstraction.stores import serial
from worker_abstraction.stores.availability import Backoff, StoreAvailability, kept_running, raise_if_cancelled
from worker_abstraction.stores.jetstream.connection import NatsOptions, NatsStoreError, NatsUnavailableError, connect
from worker_abstraction.stores.jetstream.tasks import DISPATCHED, FINISHED, TaskDoc, TaskDocs, TaskDocsOptions
from worker_abstraction.stores.jetstream.updates import UpdateLog, UpdateLogOptions, task_token
from worker_abstraction.stores.jetstream.work import Lease, WorkQueue, WorkQueueOptions
from worker_abstraction.types import DeadLetter, TaskQuery, TaskRecord, TaskSpec, TaskStatus, TaskUpdate

logger = logging.getLogger(__name__)

CANCEL_SUBJECT = "wa.cancel"
PREFETCH = 32  # tasks of one capability a replica takes ahead of its free workers
_TAKE_WAIT_SECONDS = 1.0
_NO_ROOM_PAUSE_SECONDS = 0.05
_EXHAUSTED_WAIT_SECONDS = 5.0
# While NATS does not answer, the loops try again after pauses doubling from the first to the cap (jittered).
_RETRY_FIRST_SECONDS = 0.1
_RETRY_CAP_SECONDS = 5.0
_PROBE_SECONDS = 1.0  # how often NATS is asked whether it answers (the health check and metrics follow it)
_PROBE_TIMEOUT_SECONDS = 2.0
OPEN_SECONDS = 30.0  # how long a replica starting asks a cluster that answers but cannot open its buckets yet
CLOSE_SECONDS = 10.0  # how long a replica that stops waits for NATS to take its last facts and leases


class _Holding:
    """A task this replica holds: its lease, the hold its run holds it by, and its publisher. It is what
    the journal writes its facts under; once lost (`lost`), it stays lost."""

    __slots__ = ("_lost", "gone", "hold", "lease", "publisher")

    def __init__(self, lease: Lease, lost: Callable[[_Holding, str], None]) -> None:
        self.lease = lease
        self._lost = lost
        self.publisher: UpdatePublisher | None = None
        self.hold: Hold | None = None
        self.gone = False

    def alive(self) -> bool:
        if self.gone:
            return False
        if self.lease.alive():
            return True
        self.lost("its lease lapsed")
        return False

    def lost(self, reason: str) -> None:
        if not self.gone:
            self.gone = True
            self._lost(self, reason)


class _Owner:
    """The owner of a followed handle: cancels go through the shared document."""

    __slots__ = ("_shared", "_task_id")

    def __init__(self, shared: NatsHome, task_id: str) -> None:
        self._shared, self._task_id = shared, task_id

    async def cancel(self, reason: str) -> bool:
        return bool(await self._shared.cancel(self._task_id, reason))


class NatsHome:
    """This replica's part in the shared tasks.

    Args:
        client: the NATS connection the three parts use (announcing cancels goes over it too).
        docs, queue, log: the shared task documents, work queue and update log.
        replica: this replica's name, unique among the replicas (a document's holder).
        prefetch: tasks of one capability taken ahead of this replica's free workers.
    """

    def __init__(
        self,
        client: Client,
        docs: TaskDocs,
        queue: WorkQueue,
        log: UpdateLog,
        *,
        replica: str,
        prefetch: int = PREFETCH,
    ) -> None:
        self.client = client
        self.docs = docs
        self.queue = queue
        self.log = log
        self.replica = replica
        self._prefetch = max(1, prefetch)
        self._holdings: dict[str, _Holding] = {}
        self.journal = SharedJournal(
            docs, replica, self._release, reserved_at_acceptance=ATTEMPT_BLOCK, holding=self._holdings.get
        )
        self._followed: dict[str, tuple[AsyncTaskHandle, asyncio.Task[None]]] = {}  # handle, what feeds it
        self._pullers: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._cancels: Subscription | None = None
        self._runs: Runs | None = None
        self._accepting: set[asyncio.Task[None]] = set()
        # Whether NATS answers, as this replica's loops and probe find it (health and metrics follow it).
        self.availability = StoreAvailability(f"NATS (the shared tasks of replica {replica})")
        self._owns_client = False

    @classmethod
    async def open(
        cls,
        nats: NatsOptions,
        *,
        replica: str,
        work: WorkQueueOptions | None = None,
        updates: UpdateLogOptions | None = None,
        documents: TaskDocsOptions | None = None,
        prefetch: int = PREFETCH,
    ) -> NatsHome:
        """Connect to NATS and open (creating them if missing) the documents, the queue and the log.

        A cluster that answers but cannot make or read them yet (a cluster just started, still electing its
        leaders) is asked again, backing off, for up to `OPEN_SECONDS`.

        Raises:
            NatsStoreError: NATS is unreachable or too old, or a bucket or stream cannot be made.
        """
        client = await connect(nats, name=f"wa-orchestrator {replica}")
        copies = nats.replicas
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        deadline = asyncio.get_running_loop().time() + OPEN_SECONDS
        try:
            while True:
                try:
                    docs = await TaskDocs.open(client, documents or TaskDocsOptions(replicas=copies))
                    queue = await WorkQueue.open(client, work or WorkQueueOptions(replicas=copies))
                    log = await UpdateLog.open(client, updates or UpdateLogOptions(replicas=copies))
                    break
                except NatsUnavailableError as error:
                    if asyncio.get_running_loop().time() >= deadline:
                        raise
                    logger.info("NATS cannot open the shared tasks yet (%s); asking again", error)
                    await asyncio.sleep(backoff.pause())
        except BaseException:
            await client.close()
            raise
        shared = cls(client, docs, queue, log, replica=replica, prefetch=prefetch)
        shared._owns_client = True
        return shared

    # ---- life -----------------------------------------------------------------------------------------------

    async def start(self, runs: Runs) -> None:
        """Start taking work for the capabilities the engine's workers offer, and hearing cancels."""
        self._runs = runs
        try:
            self._cancels = await self.client.subscribe(f"{CANCEL_SUBJECT}.*", cb=self._cancel_heard)
        except NatsError as error:
            raise NatsUnavailableError(f"cannot hear the replicas' cancels: {error!r}") from error
        runs.on_capabilities(self._capabilities_changed)
        self._capabilities_changed()
        self._spawn(self._kept_running("moving exhausted work", self._move_exhausted))
        self._spawn(self._kept_running("probing NATS", self._probe))

    async def aclose(self) -> None:
        """Stop taking work and give back every task held (another replica carries it on at once)."""
        for task in [*self._pullers.values(), *self._background, *self._accepting]:
            task.cancel()
        await asyncio.gather(*self._pullers.values(), *self._background, *self._accepting, return_exceptions=True)
        self._pullers.clear()
        if self._cancels is not None:
            with contextlib.suppress(NatsError):
                await self._cancels.unsubscribe()
        # Bounded: a replica stopping must stop even if NATS does not answer. A fact not written by then is
        # as if this replica had died before writing it, which the tasks survive (another replica takes them
        # over when their leases lapse).
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await self.journal.drain()
                await self.queue.close()
        except TimeoutError:
            logger.warning("replica %s: NATS did not take every last fact within %gs; stopping anyway",
                           self.replica, CLOSE_SECONDS)  # fmt: skip
            self.journal.abandon()
            await self.queue.close(give_back=False)
        await self.log.close()
        if self._owns_client:
            with contextlib.suppress(NatsError):
                await self.client.close()

    # ---- what callers ask ------------------------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self.availability.available

    def accept(self, spec: TaskSpec, then: Accepted, admit: Admit) -> None:
        accepting = asyncio.ensure_future(self._accept(spec, then, admit))
        self._accepting.add(accepting)
        accepting.add_done_callback(self._accepting.discard)

    def flush(self) -> None:
        return None

    async def _accept(self, spec: TaskSpec, then: Accepted, admit: Admit) -> None:
        try:
            accepted = await self._accepted(spec, admit)
        except BaseException as error:
            then(None, error)
            if not isinstance(error, Exception):
                raise
            return
        then(accepted, None)

    async def _accepted(self, spec: TaskSpec, admit: Admit) -> Acceptance:
        """Accept a task for whichever replica takes it; a handle following it.

        Raises:
            TaskExistsError: its id was taken before.
            QueueFullError: the shared queue is full.
            NatsStoreError: NATS did not store it (the caller should retry with an idempotency key).
            what `admit` raises.
        """
        key = spec.options.idempotency_key
        if not key:
            admit(spec)
        if key:
            holder = await self.docs.claim_key(key, spec.task_id)
            if holder != spec.task_id:
                found = await self.docs.get(holder)
                if found is None:  # an earlier try claimed the key and got no further: carry on under its id
                    spec = dataclasses.replace(spec, task_id=holder)
                else:
                    doc = found[0]
                    if not doc.finished and not doc.holder:  # an earlier try may not have queued it
                        await self.queue.put(doc.capability, holder)  # (stored once if it had)
                    known = await self.follow(holder)
                    assert known is not None, "its document was just read"
                    return Acceptance(known, duplicate=True)
            admit(spec)  # (a new task: not a duplicate)
        try:
            await self.journal.accepted(spec)
        except TaskExistsError:
            if not key:
                raise
            known = await self.follow(spec.task_id)  # another try of this key created it meanwhile
            if known is None:
                raise
            return Acceptance(known, duplicate=True)
        # Followed before its work is queued: the replica that takes it may be quick.
        handle = self._follow(spec.task_id, spec.capability, spec.params, fresh=True)
        try:
            await self.queue.put(spec.capability, spec.task_id)
        except WorkerAbstractionError:
            self._unfollow_now(spec.task_id, handle)
            if not key:  # the caller hears "not accepted": no document may stay behind
                with contextlib.suppress(NatsStoreError):
                    await self.docs.delete(spec.task_id)
            raise  # (with a key, its next try queues the document this one made)
        return Acceptance(handle)

    async def follow(self, task_id: str) -> AsyncTaskHandle | None:
        """A handle on any shared task (None: no such task)."""
        followed = self._followed.get(task_id)
        if followed is not None:
            return followed[0]
        found = await self.docs.get(task_id)
        if found is None:
            return None
        doc = found[0]
        if doc.finished and doc.record:
            return finished_handle(serial.record_of(doc.record))
        spec = serial.spec_of(doc.request)
        return self._follow(task_id, spec.capability, spec.params)

    async def cancel(self, task_id: str, reason: str) -> bool | None:
        """Cancel a shared task wherever it runs; False if it finished, None if there is no such task."""
        found = await self.docs.get(task_id)
        if found is None:
            return None
        if found[0].finished:
            return False
        await self.journal.cancel_requested(task_id, reason)
        try:
            notice = json.dumps({"task_id": task_id, "reason": reason}).encode()
            await self.client.publish(f"{CANCEL_SUBJECT}.{task_token(task_id)}", notice)
        except NatsError as error:  # the holder still finds it in the document when it next writes
            logger.warning("the cancel of task %s was not announced: %r", task_id, error)
        return True

    async def record(self, task_id: str) -> TaskRecord | None:
        """Where a shared task stands (None: no such task)."""
        found = await self.docs.get(task_id)
        return None if found is None else record_of(found[0])

    async def submission(self, task_id: str) -> TaskSpec | None:
        return await self.journal.submission(task_id)

    async def page(self, query: TaskQuery, *, limit: int) -> list[TaskRecord]:
        return await self.journal.finished_records(query, limit=limit, offset=0)

    async def dead_letters(self) -> list[DeadLetter]:
        """Every replica's, from the shared store."""
        return await self.journal.dead_letters()

    async def take_dead_letter(self, task_id: str) -> DeadLetter | None:
        return await self.journal.take_dead_letter(task_id)

    def put_dead_letter(self, letter: DeadLetter) -> None:
        self.journal.dead_lettered(letter)

    async def purge_dead_letters(self, task_ids: Iterable[str] | None) -> int:
        return await self.journal.purge_dead_letters(task_ids)

    @property
    def held(self) -> int:
        """Tasks this replica holds now."""
        return len(self._holdings)

    # ---- taking work -----------------------------------------------------------------------------------------

    def _capabilities_changed(self) -> None:
        assert self._runs is not None
        for capability in self._runs.capabilities():
            if capability not in self._pullers:
                take = functools.partial(self._pull, capability)
                puller = asyncio.ensure_future(self._kept_running(f"taking work of {capability!r}", take))
                self._pullers[capability] = puller

    async def _pull(self, capability: str) -> None:
        assert self._runs is not None
        runs = self._runs
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        while True:
            raise_if_cancelled()  # (a cancel some call swallowed must still stop the loop)
            room = self._prefetch - runs.waiting_for(capability)
            if room <= 0 or capability not in runs.capabilities():
                await asyncio.sleep(_NO_ROOM_PAUSE_SECONDS)  # (polling the local queue: no event says "room")
                continue
            try:
                leases = await self.queue.take(capability, room, wait_seconds=_TAKE_WAIT_SECONDS)
            except NatsStoreError as error:
                self.availability.failed(error)
                await asyncio.sleep(backoff.pause())
                continue
            backoff.reset()
            for lease in leases:
                try:
                    await self._take(lease)
                except (NatsStoreError, WorkerAbstractionError, ValueError) as error:
                    logger.error("task %s could not be taken: %s; given back", lease.key, error)
                    await lease.give_back(_TAKE_WAIT_SECONDS)

    async def _take(self, lease: Lease) -> None:
        assert self._runs is not None
        # Only a delivery made again (its holder's lease ran out) takes a task from a holder: a first delivery
        # of a task held already is a second copy of its work (queued again by a retried submission).
        held = await self.docs.take_over(lease.key, self.replica, ATTEMPT_BLOCK, steal=lease.deliveries > 1)
        if held is None:  # finished (its work outlived it: a lost acknowledgement), unknown, or a copy
            await lease.done()
            return
        doc = held.doc
        spec = serial.spec_of(doc.request)
        holding = _Holding(lease, self._hold_lost)
        lease.on_lost = functools.partial(holding.lost, "its lease lapsed")
        previous = self._holdings.get(spec.task_id)
        if previous is not None:  # its lease lapsed and came back here: the old run stops before the new starts
            previous.lost("taken again")
        self._holdings[spec.task_id] = holding
        # Nobody held it before: nobody published its updates (no need to ask where they end).
        base = 0 if held.sent_up_to == 0 else await self.log.last(spec.task_id)
        if holding.gone:  # lost while the log was read
            return
        publisher = UpdatePublisher(self.log, spec.task_id, base, alive=holding.alive)
        resume = None  # nobody held it before: from the start
        if held.sent_up_to or doc.cancel_reason:
            resume = Resumable(
                spec=spec,
                worker_id=doc.worker_id if doc.state == DISPATCHED else "",
                worker_address=doc.worker_address if doc.state == DISPATCHED else "",
                attempt=doc.attempt,
                reserved=held.sent_up_to,
                failures=doc.failures,
                cancel_reason=doc.cancel_reason,
                dispatched_at=doc.dispatched_at if doc.state == DISPATCHED else 0.0,
            )
        holding.hold = Hold(spec, self.journal, resume=resume, sink=publisher, alive=holding.alive)
        holding.publisher = publisher
        self._runs.run(holding.hold)

    async def _release(self, task_id: str) -> None:
        """The journal finished the held task's document: store its last update, then let its work go."""
        holding = self._holdings.pop(task_id, None)
        if holding is None:
            return
        if holding.publisher is not None:
            await holding.publisher.flushed()
        await holding.lease.done()

    def _hold_lost(self, holding: _Holding, reason: str) -> None:
        """This replica's hold on a task ended (see the module docstring): its run stops at once."""
        task_id = holding.lease.key
        if self._holdings.get(task_id) is holding:
            del self._holdings[task_id]
        self.queue.let_go(holding.lease)  # never acknowledged nor given back from here: it may be another's
        if holding.publisher is not None:
            holding.publisher.stop()
        if holding.hold is not None:
            holding.hold.lose(reason)  # (its run stops, and the engine forgets it)

    # ---- cancels and exhausted work -------------------------------------------------------------------------

    async def _cancel_heard(self, message: Msg) -> None:
        try:
            notice = json.loads(message.data)
            task_id, reason = str(notice["task_id"]), str(notice.get("reason") or "canceled by the caller")
        except (ValueError, KeyError, TypeError):
            return  # not one of ours
        handle = self._runs.handle(task_id) if self._runs is not None else None
        if handle is not None and not handle.done():
            self._spawn(_cancel(handle, reason))

    async def _move_exhausted(self) -> None:
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        while True:
            raise_if_cancelled()
            try:
                for item in await self.queue.exhausted(16, wait_seconds=_EXHAUSTED_WAIT_SECONDS):
                    await self._fail_exhausted(item.key, item.deliveries)
                    await item.settle()
            except NatsStoreError as error:  # (what was not settled is advised again after its ack wait)
                self.availability.failed(error)
                await asyncio.sleep(backoff.pause())
                continue
            backoff.reset()

    async def _fail_exhausted(self, task_id: str, deliveries: int) -> None:
        message = f"taken {deliveries} times and never finished: every replica that held it stopped"
        update = TaskUpdate(task_id=task_id, status=TaskStatus.FAILED, error_message=message)
        found = await self.docs.get(task_id)
        if found is None or found[0].finished:
            return
        spec = serial.spec_of(found[0].request)
        record = task_record(spec, TaskStatus.FAILED, last_update=update, dead_lettered=True)
        data = serial.record_bytes(record, encoded_params=spec.encoded_params)

        def end(doc: TaskDoc) -> TaskDoc | None:
            return None if doc.finished else replace(doc, state=FINISHED, record=data, status=int(TaskStatus.FAILED))

        if await self.docs.change(task_id, end) is not None:
            # Requeued as it was submitted (a new id, no old key), like any dead letter.
            options = dataclasses.replace(spec.options, task_id="", idempotency_key="")
            letter = DeadLetter(task_id, spec.capability, dict(spec.params), (), message, options, spec.owner)
            self.journal.dead_lettered(letter)
            await self._publish_last(task_id, update)
            logger.error("task %s failed: %s", task_id, message)

    async def _publish_last(self, task_id: str, update: TaskUpdate) -> None:
        """Store a finished task's last update, trying until NATS takes it: its watchers wait for it, and
        nothing else would publish it (its document is finished)."""
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        sequence = 0
        while True:
            try:
                sequence = sequence or await self.log.last(task_id) + 1
                data = serial.update_bytes(update, sequence=sequence)
                await self.log.publish(task_id, sequence, data)
                return
            except NatsStoreError as error:  # (published again under one number, it is stored once)
                self.availability.failed(error)
                await asyncio.sleep(backoff.pause())

    # ---- staying up ------------------------------------------------------------------------------------------

    async def _probe(self) -> None:
        """Ask NATS whether the task documents answer, every second (sooner, backing off, while they do not):
        the loops cannot tell a quiet queue from a silent NATS, and the health check must."""
        backoff = Backoff(_RETRY_FIRST_SECONDS, _PROBE_SECONDS)
        while True:
            raise_if_cancelled()
            await asyncio.sleep(_PROBE_SECONDS if self.availability.available else backoff.pause())
            try:
                await self.docs.probe(timeout_seconds=_PROBE_TIMEOUT_SECONDS)
            except NatsStoreError as error:
                self.availability.failed(error)
                continue
            self.availability.answered()
            backoff.reset()

    async def _kept_running(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        await kept_running(name, loop, logger, first=_RETRY_FIRST_SECONDS, cap=_RETRY_CAP_SECONDS)

    # ---- inside ----------------------------------------------------------------------------------------------

    def _follow(
        self, task_id: str, capability: str, params: Mapping[str, Any], *, fresh: bool = False
    ) -> AsyncTaskHandle:
        handle, feeding = followed_handle(self.log, task_id, capability, params, _Owner(self, task_id), fresh=fresh)
        self._followed[task_id] = handle, feeding
        self._background.add(feeding)
        feeding.add_done_callback(lambda done: self._unfollow(task_id, done))
        return handle

    def _unfollow_now(self, task_id: str, handle: AsyncTaskHandle) -> None:
        """Stop following a task whose acceptance failed."""
        followed = self._followed.get(task_id)
        if followed is not None and followed[0] is handle:
            followed[1].cancel()

    def _unfollow(self, task_id: str, feeding: asyncio.Task[None]) -> None:
        self._background.discard(feeding)
        followed = self._followed.get(task_id)
        if followed is not None and followed[1] is feeding:
            del self._followed[task_id]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _cancel(handle: AsyncTaskHandle, reason: str) -> None:
    try:
        await handle.cancel(reason)
    except Exception:  # a store that cannot write: the run says so itself
        logger.exception("cancelling task %s failed", handle.task_id)
