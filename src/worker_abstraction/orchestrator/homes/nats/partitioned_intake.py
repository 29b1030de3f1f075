"""Intake: how a `PartitionedHome` accepts a task.

A task whose id this daemon makes gets an id in a partition it holds (ids are drawn until one lands there),
so the daemon that accepts a task runs it, and its caller's handle is the run's own. Its document is created
(one compare-and-set on "absent", naming this daemon as its holder for the partition's epoch); once NATS
confirms it, the run starts. A caller-chosen id goes where it hashes; if another daemon holds that
partition, the document names no holder, its holder is poked, and the caller's handle follows the task's
updates in the update log (subscribed to that task's subject alone, before the document exists). An
idempotency key is claimed first, once across the daemons. If NATS does not confirm the document (it may
be stored all the same), the caller hears UNAVAILABLE: a task it can find again (by its key or its id) is
run here if its document turns up, any other is removed. An id found taken has its task's document read by
its partition's holder, which may have missed it (`_exists`): a task stored by a daemon killed before it
poked the holder is carried on the next time its id is submitted (as a workflow's next holder does). What a
task may carry is what a NATS message holds (`output_room`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections import OrderedDict
from typing import TYPE_CHECKING

from worker_abstraction.codec import payload_bytes
from worker_abstraction.errors import InvalidParametersError, TaskExistsError
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Acceptance, Accepted, Admit
from worker_abstraction.orchestrator.core.identity import new_task_id
from worker_abstraction.orchestrator.homes.nats.partitioned_facts import TaskFacts, holder_token, new_doc
from worker_abstraction.stores.availability import Backoff, raise_if_cancelled
from worker_abstraction.stores.jetstream.connection import NatsStoreError, NatsUnavailableError
from worker_abstraction.stores.jetstream.pipeline import Ack, WrongLastSequenceError
from worker_abstraction.stores.jetstream.tasks import TaskDoc
from worker_abstraction.types import TaskSpec

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome

RECORD_ROOM = 64 * 2**10  # of a task's document, kept for its record's attempts, failures and metadata
_DOC_ROOM = 4096  # of a NATS message, kept for a document's other fields and the message's headers
_LOCAL_ID_DRAWS = 256  # ids drawn for a task before it goes wherever its id hashes
_ABANDONED_REMEMBERED = 10_000
_RETRY_FIRST_SECONDS = 0.1
_RETRY_CAP_SECONDS = 5.0


class Intake:
    """Accepting tasks into `home` (module docstring).

    Attributes:
        accepting: the tasks being accepted now, by id: the handle each caller gets once it is stored.
        abandoned: tasks whose acceptance failed though their document may be stored naming this daemon: run
            here if it turns up (their callers find them by key or id), by partition and epoch.
    """

    def __init__(self, home: PartitionedHome) -> None:
        self._home = home
        self.accepting: dict[str, asyncio.Future[AsyncTaskHandle]] = {}
        self.abandoned: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def accept(self, spec: TaskSpec, then: Accepted, admit: Admit) -> None:
        if self.output_room(spec) < 0:
            then(None, InvalidParametersError([self._too_large(spec)]))
            return
        if spec.options.idempotency_key or spec.options.task_id:
            self._home._spawn(self._accept_checked(spec, then, admit))
            return
        try:
            admit(spec)
        except Exception as error:
            then(None, error)
            return
        self._create(self._local(spec), chosen=False).add_done_callback(functools.partial(_told, then))

    def output_room(self, spec: TaskSpec) -> int:
        """The largest output (JSON bytes) a task's finished document can hold beside its arguments, as NATS's
        max_payload lets a message be (negative: not even its arguments fit)."""
        params = payload_bytes(spec.encoded_params)
        # The document is JSON, its submission and record in base64 (4 bytes for 3), each holding the
        # arguments; the record's attempts, failures and the rest get RECORD_ROOM.
        return (self._home.client.max_payload - _DOC_ROOM) * 3 // 4 - 2 * params - RECORD_ROOM

    def _too_large(self, spec: TaskSpec) -> str:
        params = payload_bytes(spec.encoded_params)
        room = max(0, ((self._home.client.max_payload - _DOC_ROOM) * 3 // 4 - RECORD_ROOM) // 2)
        return (
            f"the task's arguments take {params:,} bytes as JSON; tasks shared on NATS keep at most {room:,} "
            f"(the NATS servers' max_payload is {self._home.client.max_payload:,} bytes: raise it there to carry more)"
        )

    async def _accept_checked(self, spec: TaskSpec, then: Accepted, admit: Admit) -> None:
        try:
            accepted = await self._accepted_checked(spec, admit)
        except BaseException as error:
            then(None, error)
            if not isinstance(error, Exception):
                raise
            return
        then(accepted, None)

    async def _accepted_checked(self, spec: TaskSpec, admit: Admit) -> Acceptance:
        key, chosen = spec.options.idempotency_key, bool(spec.options.task_id)
        if not chosen:
            spec = self._local(spec)
        if key:
            holder = await self._home.store.letters.claim_key(key, spec.task_id)
            if holder != spec.task_id:
                known = await self._known(holder)
                if known is not None:
                    return Acceptance(known, duplicate=True)
                # An earlier try claimed the key and got no further: carried on under its id.
                spec, chosen = dataclasses.replace(spec, task_id=holder), True
        admit(spec)
        try:
            return Acceptance(await self._create(spec, chosen=chosen))
        except TaskExistsError:
            known = await self._known(spec.task_id) if key else None
            if known is None:
                raise
            return Acceptance(known, duplicate=True)  # another try of this key made it meanwhile

    def _local(self, spec: TaskSpec) -> TaskSpec:
        """The spec with an id in a partition this daemon holds, if it holds any (its id is ours to choose)."""
        leases = self._home.leases
        if leases is None or leases.held(self._home.store.partition(spec.task_id)):
            return spec
        for _ in range(_LOCAL_ID_DRAWS):
            task_id = new_task_id()
            if leases.held(self._home.store.partition(task_id)):
                return dataclasses.replace(spec, task_id=task_id)
        return spec

    def _create(self, spec: TaskSpec, *, chosen: bool) -> asyncio.Future[AsyncTaskHandle]:
        """Store a new task's document; the handle its caller gets once it is stored."""
        task_id = spec.task_id
        if task_id in self.accepting:
            failed: asyncio.Future[AsyncTaskHandle] = asyncio.get_running_loop().create_future()
            failed.set_exception(TaskExistsError(task_id))
            return failed
        partition = self._home.store.partition(task_id)
        epoch = self._home.leases.epoch(partition) if self._home.leases is not None else None
        accepting: asyncio.Future[AsyncTaskHandle] = asyncio.get_running_loop().create_future()
        self.accepting[task_id] = accepting
        if chosen or epoch is None:
            self._home._spawn(self._create_awaited(spec, partition, epoch, accepting, chosen=chosen))
        else:
            doc = new_doc(spec, holder_token(self._home.replica, epoch))
            written = self._home.store.write_doc(task_id, doc, 0)
            written.add_done_callback(functools.partial(self._created, spec, doc, partition, epoch, accepting))
        return accepting

    def _created(
        self,
        spec: TaskSpec,
        doc: TaskDoc,
        partition: int,
        epoch: int,
        accepting: asyncio.Future[AsyncTaskHandle],
        written: asyncio.Future[Ack],
    ) -> None:
        self.accepting.pop(spec.task_id, None)
        error = NatsUnavailableError("not written") if written.cancelled() else written.exception()
        if error is not None:
            if isinstance(error, WrongLastSequenceError):
                error = TaskExistsError(spec.task_id)
                self._exists(partition, spec.task_id)
            elif isinstance(error, NatsUnavailableError):  # it may be stored all the same
                self._home.availability.failed(error)
                self._abandon(spec, partition, epoch)
            _settle(accepting, error=error)
            return
        _settle(accepting, self._started(spec, doc, written.result().seq, partition, epoch))

    async def _create_awaited(
        self,
        spec: TaskSpec,
        partition: int,
        epoch: int | None,
        accepting: asyncio.Future[AsyncTaskHandle],
        *,
        chosen: bool,
    ) -> None:
        """`_create` for a caller-chosen id (a document deleted before counts as absent; a finished task of
        that id does not) or one in a partition another daemon holds (followed from here: subscribed before
        the document exists)."""
        followed = None
        try:
            if epoch is None:
                followed = self._home._follow(spec.task_id, spec.capability, spec.params, fresh=True)
                await self._home.store.log.subscribed(spec.task_id)
            doc = new_doc(spec, holder_token(self._home.replica, epoch) if epoch is not None else "")
            revision = await self._home.store.create_doc(doc, chosen=chosen)
            if epoch is None:
                self._home.store.poke(partition, spec.task_id)  # (its partition's holder takes it on)
        except BaseException as error:
            if followed is not None:
                self._home._unfollow_now(spec.task_id, followed)
            self.accepting.pop(spec.task_id, None)
            if isinstance(error, TaskExistsError):
                self._exists(partition, spec.task_id)
            elif epoch is not None and isinstance(error, NatsUnavailableError):
                self._abandon(spec, partition, epoch)  # (one whose id nobody holds is taken on where it lands)
            _settle(accepting, error=error)
            if not isinstance(error, Exception):
                raise
            return
        self.accepting.pop(spec.task_id, None)
        if epoch is None:
            assert followed is not None
            _settle(accepting, followed)
        else:
            _settle(accepting, self._started(spec, doc, revision, partition, epoch))

    def _started(self, spec: TaskSpec, doc: TaskDoc, revision: int, partition: int, epoch: int) -> AsyncTaskHandle:
        """A task stored here for this daemon: its run, or (the partition lost or being given up meanwhile) a
        handle following it, its partition's next holder told to take it (it may have read the partition
        before the document was stored)."""
        if self._home._may_run(partition, epoch):
            return self._home._run(spec, TaskFacts(doc, revision, partition, epoch), None)
        self._home.store.poke(partition, spec.task_id)
        return self._home._follow(spec.task_id, spec.capability, spec.params, fresh=False)

    def _exists(self, partition: int, task_id: str) -> None:
        """An id being accepted is a task's stored before, perhaps nobody's to run yet: its creator may have died
        before it poked the partition's holder, and this daemon's reads of the partition pass over an id while
        it is being accepted. The partition's holder reads its document: this daemon if it holds it (a
        workflow's next holder submitting a step again, under its fixed id), else the daemon a poke reaches."""
        leases = self._home.leases
        if leases is not None and leases.held(partition):
            self._home._takeover.poked(partition, task_id)
        else:
            self._home.store.poke(partition, task_id)

    async def _known(self, task_id: str) -> AsyncTaskHandle | None:
        """A handle on a task that may have been accepted a moment ago (None: none, or its acceptance failed)."""
        handle = self._home._runs.handle(task_id) if self._home._runs is not None else None
        if handle is not None:
            return handle
        accepting = self.accepting.get(task_id)
        if accepting is not None:
            try:
                return await asyncio.shield(accepting)
            except Exception:
                return None
        return await self._home.follow(task_id)

    def _abandon(self, spec: TaskSpec, partition: int, epoch: int) -> None:
        """NATS did not confirm a new task's document, stored naming this daemon: the caller hears "no". One it
        can find again (by its key, or its id of its choosing) is run here if the document turns up (its retry
        finds it then); any other is removed."""
        task_id = spec.task_id
        if not (spec.options.idempotency_key or spec.options.task_id):
            self._home._spawn(self._remove(task_id))
            return
        self.abandoned[task_id] = (partition, epoch)
        if len(self.abandoned) > _ABANDONED_REMEMBERED:
            self.abandoned.popitem(last=False)
        self._home._spawn(self._recover(task_id, partition, epoch))

    async def _recover(self, task_id: str, partition: int, epoch: int) -> None:
        """Look for the document of a task abandoned here: if it was stored, run it (the watch shows it too
        when it lands later, but not when it landed while the task was still being accepted)."""
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        while self._home._alive(partition, epoch) and task_id in self.abandoned:
            raise_if_cancelled()
            try:
                found = await self._home.store.get(task_id)
            except NatsUnavailableError as error:
                self._home.availability.failed(error)
                await asyncio.sleep(backoff.pause())
                continue
            if found is not None:
                self._home._takeover.consider(partition, epoch, *found)
            return

    async def _remove(self, task_id: str) -> None:
        with contextlib.suppress(NatsStoreError):
            await self._home.store.delete(task_id)


def _told(then: Accepted, accepting: asyncio.Future[AsyncTaskHandle]) -> None:
    if accepting.cancelled():
        then(None, asyncio.CancelledError())
    elif (error := accepting.exception()) is not None:
        then(None, error)
    else:
        then(Acceptance(accepting.result()), None)


def _settle(
    future: asyncio.Future[AsyncTaskHandle],
    handle: AsyncTaskHandle | None = None,
    *,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
        future.exception()  # (its waiters hear it; unheard it is not an error)
    else:
        assert handle is not None
        future.set_result(handle)
