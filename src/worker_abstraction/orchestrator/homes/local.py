"""LocalHome: tasks that live in this process, kept in memory or in a task store (SQLite), and run here.

Every task it accepts runs on the engine it feeds, and its holds are never lost. What a run does is written
to the journal (see `homes.journal`): nothing without a store; with one, enough to resume every unfinished
task after a restart, which `start` does before anything new is accepted.

Idempotency is owned here: a key is claimed when its task is accepted (before the store is asked, so a
concurrent resubmission of the key waits for that one instead of making a second task), and remembered
for the latest `keep_keys` tasks; older keys are found in the store, which keeps them all.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from worker_abstraction.errors import TaskExistsError
from worker_abstraction.orchestrator.core.facts import Journal
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Acceptance, Accepted, Admit, Hold, Runs
from worker_abstraction.orchestrator.core.records import finished_handle
from worker_abstraction.orchestrator.core.retention import Retention
from worker_abstraction.orchestrator.homes.journal import NullJournal, StoreJournal
from worker_abstraction.schedules.book import MemoryBook, ScheduleBook
from worker_abstraction.stores.availability import StoreAvailability
from worker_abstraction.stores.sqlite_schedules import SqliteScheduleBook
from worker_abstraction.types import DeadLetter, TaskQuery, TaskRecord, TaskSpec

logger = logging.getLogger(__name__)

KEEP_KEYS = 100_000  # idempotency keys remembered in memory (the store keeps every one)


class LocalHome:
    """Tasks kept in this process (`journal`: NullJournal, memory only; StoreJournal, a task store)."""

    def __init__(self, journal: NullJournal | StoreJournal | None = None, *, keep_keys: int = KEEP_KEYS) -> None:
        self.journal: NullJournal | StoreJournal = journal if journal is not None else NullJournal()
        self._keep_keys = keep_keys
        self._runs: Runs | None = None
        self._keys: OrderedDict[str, str] = OrderedDict()  # idempotency key -> task id
        self._accepting: dict[str, asyncio.Future[AsyncTaskHandle]] = {}  # task id -> its acceptance, until stored
        self._checks: set[asyncio.Task[None]] = set()

    @property
    def availability(self) -> StoreAvailability | None:
        return None

    async def expire(self, retention: Retention, now: float) -> list[str]:
        """Drop what the store keeps past its retention (finished tasks, then dead letters), a batch at a
        time, resting after each as long as it took (so the sweep takes at most about half of the loop's
        time: a sweep of 100,000 tasks with a turn between batches tripled the p50 of the tasks beside it);
        the ids of the tasks dropped."""
        store = self.journal.store if isinstance(self.journal, StoreJournal) else None
        expire = getattr(store, "expire_finished", None)
        if store is None or expire is None:
            return []
        expired: list[str] = []
        gone: set[str] = set()  # (the same, to drop their idempotency keys)
        rounds: list[tuple[float, dict[str, Any]]] = [
            (now - kept, {"capability": capability}) for capability, kept in retention.per_capability.items()
        ]
        if retention.finished_seconds is not None:
            rounds.append((now - retention.finished_seconds, {"other_than": tuple(retention.per_capability)}))
        for before, which in rounds:
            while True:
                began = time.perf_counter()
                batch = await expire(before, limit=retention.batch, **which)
                expired += batch
                gone.update(batch)
                if len(batch) < retention.batch:
                    break
                await asyncio.sleep(time.perf_counter() - began)  # (submissions go on meanwhile)
        if retention.dead_letters_seconds is not None and isinstance(self.journal, StoreJournal):
            sweep_letters = getattr(store, "expire_dead_letters")  # noqa: B009  (a SQLite store's; see above)
            while True:
                began = time.perf_counter()
                letters = await sweep_letters(now - retention.dead_letters_seconds, limit=retention.batch)
                self.journal.letters.purge(letters)
                if len(letters) < retention.batch:
                    break
                await asyncio.sleep(time.perf_counter() - began)
        # The keys of the tasks dropped go too, a few thousand at a time (up to KEEP_KEYS are remembered).
        remembered = list(self._keys.items()) if gone else []
        for at in range(0, len(remembered), 5_000):
            for key, task_id in remembered[at : at + 5_000]:
                if task_id in gone and self._keys.get(key) == task_id:
                    del self._keys[key]
            await asyncio.sleep(0)
        return expired

    def schedule_book(self) -> ScheduleBook:
        """Schedules kept where the tasks are: a SQLite store's file, or memory."""
        path = getattr(self.journal.store, "path", None) if isinstance(self.journal, StoreJournal) else None
        return SqliteScheduleBook(path) if isinstance(path, str) else MemoryBook()

    @property
    def writable(self) -> bool:
        store = getattr(self.journal, "store", None)
        return bool(getattr(store, "writable", True))

    @property
    def facts(self) -> Journal:
        """Where the runs of this home's tasks write their facts."""
        return self.journal

    async def start(self, runs: Runs) -> None:
        """Resume the tasks the journal holds unfinished, and keep its dead letters."""
        self._runs = runs
        await self.journal.dead_letters()
        found = await self.journal.unfinished()
        for item in found:
            key = item.spec.options.idempotency_key
            if key:
                self._remember(key, item.spec.task_id)
            runs.announce(runs.run(Hold(item.spec, self.journal, resume=item)))
        if found:
            logger.info("resumed %d unfinished task(s) from the task store", len(found))

    def accept(self, spec: TaskSpec, then: Accepted, admit: Admit) -> None:
        if spec.options.idempotency_key or spec.options.task_id:
            # An earlier task may own the key or the id: asked of memory first, of the store if need be.
            checking = asyncio.ensure_future(self._accept_checked(spec, then, admit))
            self._checks.add(checking)
            checking.add_done_callback(self._checks.discard)
            return
        self._store(spec, then, admit)

    def flush(self) -> None:
        self.journal.flush()

    async def follow(self, task_id: str) -> AsyncTaskHandle | None:
        accepting = self._accepting.get(task_id)
        if accepting is not None:
            return await asyncio.shield(accepting)
        record = await self.journal.finished_record(task_id)
        return finished_handle(record) if record is not None else None

    async def record(self, task_id: str) -> TaskRecord | None:
        return await self.journal.finished_record(task_id)

    async def submission(self, task_id: str) -> TaskSpec | None:
        return await self.journal.submission(task_id)

    async def page(self, query: TaskQuery, *, limit: int) -> list[TaskRecord]:
        return await self.journal.finished_records(query, limit=limit, offset=0)

    async def cancel(self, task_id: str, reason: str) -> bool | None:
        # Every task of this home that has not finished runs here (the engine cancels it there).
        return False if await self.journal.finished_record(task_id) is not None else None

    async def dead_letters(self) -> list[DeadLetter]:
        return self.journal.letters.list()

    async def take_dead_letter(self, task_id: str) -> DeadLetter | None:
        letter = self.journal.letters.take(task_id)
        if letter is not None:
            self.journal.dead_letters_removed([task_id])
        return letter

    def put_dead_letter(self, letter: DeadLetter) -> None:
        self.journal.dead_lettered(letter)

    async def purge_dead_letters(self, task_ids: Iterable[str] | None) -> int:
        purged = self.journal.letters.purge(task_ids)
        if purged:
            self.journal.dead_letters_removed(purged)
        return len(purged)

    async def aclose(self) -> None:
        for checking in list(self._checks):
            checking.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)
        await self.journal.drain()

    # ---- inside ----------------------------------------------------------------------------------------------

    async def _accept_checked(self, spec: TaskSpec, then: Accepted, admit: Admit) -> None:
        try:
            known = await self._known(spec)
        except BaseException as error:
            then(None, error)
            if not isinstance(error, Exception):
                raise
            return
        if known is not None:
            then(Acceptance(known, duplicate=True), None)
        else:
            self._store(spec, then, admit)

    async def _known(self, spec: TaskSpec) -> AsyncTaskHandle | None:
        """The earlier task with this spec's idempotency key, if any. What it returns None on is checked
        last with no pause before the caller claims the key and id (`_store`), so two concurrent
        submissions of one key make one task.

        Raises:
            TaskExistsError: the caller chose the task's id, and it was taken before.
        """
        key, task_id = spec.options.idempotency_key, spec.options.task_id
        if key:
            earlier = self._keys.get(key)
            if earlier is None:
                record = await self.journal.finished_by_key(key)
                if record is not None and self._keys.get(key) is None:
                    self._remember(key, record.task_id)
                    return finished_handle(record)
        if task_id and (self._live(task_id) is not None or await self.journal.finished_record(task_id) is not None):
            raise TaskExistsError(task_id)
        earlier = self._keys.get(key) if key else None  # (claimed meanwhile, perhaps)
        if earlier is not None:
            self._keys.move_to_end(key)
            handle = await self._handle(earlier)
            if handle is not None:
                return handle
            if self._keys.get(key) == earlier:  # its acceptance failed, or it is forgotten: the key is free
                del self._keys[key]
            return await self._known(spec)
        if task_id and (task_id in self._accepting or self._live(task_id) is not None):  # (taken meanwhile)
            raise TaskExistsError(task_id)
        return None

    def _store(self, spec: TaskSpec, then: Accepted, admit: Admit) -> None:
        """Admit the task, claim its key and id, store it, and once it is stored run it here and tell `then`."""
        try:
            admit(spec)
        except Exception as error:
            then(None, error)
            return
        task_id, key = spec.task_id, spec.options.idempotency_key
        if not key and not spec.options.task_id:  # nobody can ask for it by key or id before it is stored
            self.journal.accepted_soon(spec, functools.partial(self._stored, spec, then))
            return
        accepting: asyncio.Future[AsyncTaskHandle] = asyncio.get_running_loop().create_future()
        self._accepting[task_id] = accepting
        if key:
            self._remember(key, task_id)

        def stored(problem: BaseException | None) -> None:
            del self._accepting[task_id]
            if problem is not None:
                if key and self._keys.get(key) == task_id:
                    del self._keys[key]
                accepting.set_exception(problem)
                accepting.exception()  # (its waiters, if any, hear it; unheard it is not an error)
                then(None, problem)
            else:
                accepting.set_result(self._run(spec, then))

        self.journal.accepted_soon(spec, stored)

    def _stored(self, spec: TaskSpec, then: Accepted, problem: BaseException | None) -> None:
        if problem is None:
            self._run(spec, then)
        else:
            then(None, problem)

    def _run(self, spec: TaskSpec, then: Accepted) -> AsyncTaskHandle:
        """The task is stored: run it here, and tell `then`."""
        assert self._runs is not None, "the home was started"
        handle = self._runs.run(Hold(spec, self.journal))
        then(Acceptance(handle), None)
        return handle

    async def _handle(self, task_id: str) -> AsyncTaskHandle | None:
        """A handle on a task accepted here: running, being stored, or finished (None: forgotten)."""
        handle = self._live(task_id)
        if handle is not None:
            return handle
        accepting = self._accepting.get(task_id)
        if accepting is not None:
            try:
                return await asyncio.shield(accepting)
            except Exception:  # its acceptance failed: as if it never was
                return None
        record = await self.journal.finished_record(task_id)
        return finished_handle(record) if record is not None else None

    def _live(self, task_id: str) -> AsyncTaskHandle | None:
        return self._runs.handle(task_id) if self._runs is not None else None

    def _remember(self, key: str, task_id: str) -> None:
        self._keys[key] = task_id
        self._keys.move_to_end(key)
        while len(self._keys) > self._keep_keys:
            self._keys.popitem(last=False)
