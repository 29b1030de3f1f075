"""CallerSide: what a `PartitionedHome` answers its callers (handles, records, cancels, dead letters, schedules).

A task is followed from any daemon: the run's own handle if it runs here, a finished handle if it ended,
else a handle fed from the update log (`partitioned_follow`), one per task. A cancel of a task run
elsewhere is written into its document (compare-and-set) and its holder is poked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from nats.aio.client import Client

from worker_abstraction.errors import TaskNotFoundError, TaskNotWaitingError
from worker_abstraction.exchanges import InputAnswer
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Runs
from worker_abstraction.orchestrator.core.records import finished_handle
from worker_abstraction.orchestrator.homes.nats.partitioned_follow import Followers
from worker_abstraction.orchestrator.homes.nats.partitioned_journal import PartitionedJournal
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStore
from worker_abstraction.orchestrator.homes.nats.records import record_of
from worker_abstraction.stores import serial
from worker_abstraction.stores.jetstream.connection import NatsUnavailableError
from worker_abstraction.stores.jetstream.pipeline import WrongLastSequenceError
from worker_abstraction.stores.jetstream.schedules import NatsScheduleBook
from worker_abstraction.types import DeadLetter, TaskQuery, TaskRecord, TaskSpec, TaskStatus, TaskUpdate

_CANCEL_TRIES = 10


class _Owner:
    """The owner of a handle that follows a task through the update log: cancels go wherever it runs."""

    __slots__ = ("_home", "_task_id")

    def __init__(self, home: CallerSide, task_id: str) -> None:
        self._home, self._task_id = home, task_id

    async def cancel(self, reason: str) -> bool:
        return bool(await self._home.cancel(self._task_id, reason))

    async def provide_input(self, value_json: str, *, request_id: str = "", answered_by: str = "") -> InputAnswer:
        # (The task runs on another daemon: `Engine.provide_input` answers its worker directly.)
        raise TaskNotWaitingError(self._task_id, "runs on another daemon: answer it through the orchestrator")


class CallerSide:
    """The callers' side of a `PartitionedHome` (which holds what is annotated here and makes `_keep`)."""

    client: Client
    store: PartitionedStore
    journal: PartitionedJournal
    _runs: Runs | None
    _followed: dict[str, tuple[AsyncTaskHandle, asyncio.Task[None]]]
    _followers: Followers
    _schedules: NatsScheduleBook | None

    def _keep(self, task: asyncio.Future[Any]) -> None:
        raise NotImplementedError

    # ---- what callers ask ------------------------------------------------------------------------------------

    async def follow(self, task_id: str) -> AsyncTaskHandle | None:
        """A handle on any task (None: no such task)."""
        followed = self._followed.get(task_id)
        if followed is not None:
            return followed[0]
        found = await self.store.get(task_id)
        if found is None:
            return None
        doc = found[0]
        if doc.finished and doc.record:  # (with the chunks its update log still holds: read them late too)
            return finished_handle(serial.record_of(doc.record), await self.updates(task_id))
        spec = serial.spec_of(doc.request)
        return self._follow(task_id, spec.capability, spec.params, fresh=False)

    async def updates(self, task_id: str) -> list[TaskUpdate]:
        """The updates the task's holder has published so far (a task run elsewhere: its questions, say)."""
        return [serial.update_of(data) for _, data in await self.store.log.kept(task_id)]

    async def record(self, task_id: str) -> TaskRecord | None:
        found = await self.store.get(task_id)
        return None if found is None else record_of(found[0])

    async def submission(self, task_id: str) -> TaskSpec | None:
        return await self.journal.submission(task_id)

    async def page(self, query: TaskQuery, *, limit: int) -> list[TaskRecord]:
        return await self.journal.finished_records(query, limit=limit, offset=0)

    async def decide(self, task_id: str, approved: bool, decided_by: str, reason: str) -> TaskStatus:
        """Approve or deny a task waiting for approval wherever it runs: written into its document, where its
        holder sees it and carries it out (see `approval`); returns the status it goes on in.

        Raises:
            TaskNotFoundError: no such task.
            TaskNotWaitingError: it waits for no approval, or a decision was written already.
        """
        for _ in range(_CANCEL_TRIES):
            found = await self.store.get(task_id)
            if found is None:
                raise TaskNotFoundError(task_id, "the orchestrator")
            doc, revision = found
            updates = await self.updates(task_id)
            if doc.finished or not updates or updates[-1].status is not TaskStatus.APPROVAL_REQUIRED:
                raise TaskNotWaitingError(task_id, "waits for no approval")
            if doc.decision:
                raise TaskNotWaitingError(task_id, "was decided on already")
            decision = json.dumps([approved, decided_by, reason])
            try:
                await self.store.update_doc(dataclasses.replace(doc, decision=decision), revision)
            except WrongLastSequenceError:
                continue  # written meanwhile: read it again
            self.store.poke(self.store.partition(task_id), task_id)
            return TaskStatus.PENDING if approved else TaskStatus.CANCELED
        raise NatsUnavailableError(f"task {task_id[:40]!r} kept changing; the decision was not written")

    async def cancel(self, task_id: str, reason: str) -> bool | None:
        """Cancel a task wherever it runs: written into its document, where its holder sees it."""
        handle = self._runs.handle(task_id) if self._runs is not None else None
        if handle is not None and not handle.done() and self.journal.facts(task_id) is not None:
            return await handle.cancel(reason)
        for _ in range(_CANCEL_TRIES):
            found = await self.store.get(task_id)
            if found is None:
                return None
            doc, revision = found
            if doc.finished:
                return False
            if doc.cancel_reason:
                return True
            try:
                await self.store.update_doc(dataclasses.replace(doc, cancel_reason=reason), revision)
            except WrongLastSequenceError:
                continue  # written meanwhile: read it again
            self.store.poke(self.store.partition(task_id), task_id)
            return True
        raise NatsUnavailableError(f"task {task_id[:40]!r} kept changing; the cancel was not written")

    async def dead_letters(self) -> list[DeadLetter]:
        return await self.journal.dead_letters()

    async def take_dead_letter(self, task_id: str) -> DeadLetter | None:
        return await self.journal.take_dead_letter(task_id)

    def put_dead_letter(self, letter: DeadLetter) -> None:
        self.journal.dead_lettered(letter)

    async def purge_dead_letters(self, task_ids: Iterable[str] | None) -> int:
        return await self.journal.purge_dead_letters(task_ids)

    def schedule_book(self) -> NatsScheduleBook:
        """The schedules every daemon on this NATS shares, on this home's connection (one book, made on the first
        call; its bucket, in as many copies as the tasks', is opened by the book's first call)."""
        if self._schedules is None:
            options = self.store.options
            self._schedules = NatsScheduleBook(
                self.client, replicas=options.replicas, answer_timeout_seconds=options.answer_timeout_seconds
            )
        return self._schedules

    def _follow(self, task_id: str, capability: str, params: Mapping[str, Any], *, fresh: bool) -> AsyncTaskHandle:
        followed = self._followed.get(task_id)
        if followed is not None:
            return followed[0]
        handle, feeding = self._followers.handle(task_id, capability, params, _Owner(self, task_id), fresh=fresh)
        self._followed[task_id] = handle, feeding
        self._keep(feeding)
        feeding.add_done_callback(lambda done: self._unfollow(task_id, done))
        return handle

    def _unfollow_now(self, task_id: str, handle: AsyncTaskHandle) -> None:
        followed = self._followed.get(task_id)
        if followed is not None and followed[0] is handle:
            # Forgotten at once, not when its feeding task has wound down: a watch of the task made meanwhile
            # must get a live follower, not this one, which hears nothing more (a workflow's step stuck RUNNING).
            del self._followed[task_id]
            followed[1].cancel()

    def _unfollow(self, task_id: str, feeding: asyncio.Task[None]) -> None:
        followed = self._followed.get(task_id)
        if followed is not None and followed[1] is feeding:
            del self._followed[task_id]
