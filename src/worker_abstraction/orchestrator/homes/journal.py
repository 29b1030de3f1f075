"""The local home's journals: each task's facts written in order to a TaskStore (SQLite) and read back after a
restart (`StoreJournal`), or kept nowhere but the dead letters in memory (`NullJournal`), so no caller ever
asks "is this durable?". What is written when is said in `core.facts`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from worker_abstraction.errors import InvalidParametersError
from worker_abstraction.orchestrator.core.deadletters import DeadLetterQueue
from worker_abstraction.orchestrator.core.facts import ATTEMPT_BLOCK, Recorded, Resumable, tell
from worker_abstraction.stores import serial
from worker_abstraction.stores.tasks import PromptTaskStore, Stored, StoredTask, TaskStore
from worker_abstraction.types import DeadLetter, TaskQuery, TaskRecord, TaskSpec, latest_worker

logger = logging.getLogger(__name__)


class NullJournal:
    """Keeps nothing but the dead letters, in memory: an orchestrator embedded in a program, without a store."""

    def __init__(self) -> None:
        self.letters = DeadLetterQueue()

    async def accepted(self, spec: TaskSpec) -> None:
        return None

    def accepted_soon(self, spec: TaskSpec, then: Stored) -> None:
        then(None)

    def flush(self) -> None:
        return None

    async def reserve(self, task_id: str, up_to: int) -> None:
        return None

    def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        return None

    async def dispatching(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        return None

    def requeued(self, task_id: str, attempt: int, failures: int) -> None:
        return None

    async def cancel_requested(self, task_id: str, reason: str) -> None:
        return None

    async def answered(self, task_id: str, answers: str) -> None:
        return None

    def finished(self, task: Recorded) -> None:
        return None

    def dead_lettered(self, letter: DeadLetter) -> None:
        self.letters.keep(letter)

    def dead_letters_removed(self, task_ids: Sequence[str]) -> None:
        return None

    async def dead_letters(self) -> list[DeadLetter]:
        return self.letters.list()

    async def unfinished(self) -> list[Resumable]:
        return []

    async def finished_record(self, task_id: str) -> TaskRecord | None:
        return None

    async def finished_by_key(self, idempotency_key: str) -> TaskRecord | None:
        return None

    async def submission(self, task_id: str) -> TaskSpec | None:
        return None

    async def finished_records(self, query: TaskQuery, *, limit: int, offset: int) -> list[TaskRecord]:
        return []

    async def drain(self) -> None:
        return None


class StoreJournal:
    """Writes each fact to a TaskStore, in the order the facts happen; keeps the dead letters in memory too
    (read back from the store by `dead_letters`)."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self.letters = DeadLetterQueue()
        # A store that tells waiters as its commits end (and commits when asked), if this one is.
        self._prompt = cast(PromptTaskStore, store) if callable(getattr(store, "flush", None)) else None
        self._writes: set[asyncio.Future[None]] = set()

    async def accepted(self, spec: TaskSpec) -> None:
        await self._accepted(spec)

    def accepted_soon(self, spec: TaskSpec, then: Stored) -> None:
        if self._prompt is None:
            self._accepted(spec).add_done_callback(functools.partial(tell, then))
        else:
            self._accepted(spec, functools.partial(self._prompt.accepted, then=then))

    def _accepted(self, spec: TaskSpec, accepted: Callable[..., Awaitable[None]] | None = None) -> asyncio.Future[None]:
        return self._write(
            (accepted or self.store.accepted)(
                spec.task_id,
                serial.spec_bytes(spec),
                serial.SPEC_FORMAT,
                capability=spec.capability,
                idempotency_key=spec.options.idempotency_key,
                reserved=ATTEMPT_BLOCK,
                owner=spec.owner,
            )
        )

    def flush(self) -> None:
        if self._prompt is not None:
            self._prompt.flush()

    async def reserve(self, task_id: str, up_to: int) -> None:
        await self._write(self.store.reserve(task_id, up_to))

    def dispatched(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        self._write(self.store.dispatched(task_id, worker_id, worker_address, attempt))

    async def dispatching(self, task_id: str, worker_id: str, worker_address: str, attempt: int) -> None:
        # (The store commits the facts in the order it was given them: the earlier ones with this one.)
        await self._write(self.store.dispatched(task_id, worker_id, worker_address, attempt))

    def requeued(self, task_id: str, attempt: int, failures: int) -> None:
        self._write(self.store.requeued(task_id, attempt, failures))

    async def cancel_requested(self, task_id: str, reason: str) -> None:
        await self._write(self.store.cancel_requested(task_id, reason))

    async def answered(self, task_id: str, answers: str) -> None:
        await self._write(self.store.answered(task_id, answers))

    def finished(self, task: Recorded) -> None:
        record = task.record()
        data = serial.record_bytes(record, encoded_params=task.spec.encoded_params)
        self._write(self.store.finished(record.task_id, data, int(record.status), latest_worker(record)))

    def dead_lettered(self, letter: DeadLetter) -> None:
        self.letters.keep(letter)
        entry = serial.dead_letter_bytes(letter)
        self._write(self.store.dead_lettered(letter.task_id, entry, serial.SPEC_FORMAT))

    def dead_letters_removed(self, task_ids: Sequence[str]) -> None:
        self._write(self.store.dead_letters_removed(task_ids))

    async def dead_letters(self) -> list[DeadLetter]:
        letters = []
        for stored in await self.store.dead_letters():
            try:
                letters.append(serial.dead_letter_of(stored.entry))
            except (InvalidParametersError, ValueError) as error:  # a damaged row must not stop the daemon
                logger.error("skipping an unreadable dead letter in the store: %s", error)
        self.letters.restore(letters)
        return self.letters.list()

    async def unfinished(self) -> list[Resumable]:
        found = []
        for stored in await self.store.unfinished():
            try:
                spec = _spec_of(stored)
            except (InvalidParametersError, ValueError) as error:
                logger.error("task %s in the store cannot be read back; left as it is: %s", stored.task_id, error)
                continue
            found.append(
                Resumable(
                    spec=spec,
                    worker_id=stored.worker_id,
                    worker_address=stored.worker_address,
                    attempt=stored.attempt,
                    reserved=stored.reserved,
                    failures=stored.failures,
                    cancel_reason=stored.cancel_reason,
                    dispatched_at=stored.dispatched_at,
                    answers=stored.answers,
                )
            )
        return found

    async def finished_record(self, task_id: str) -> TaskRecord | None:
        return _record(await self.store.finished_record(task_id))

    async def finished_by_key(self, idempotency_key: str) -> TaskRecord | None:
        await self.drain()  # a record written a moment ago must be found
        return _record(await self.store.finished_by_key(idempotency_key))

    async def submission(self, task_id: str) -> TaskSpec | None:
        stored = await self.store.submission(task_id)
        if stored is None:
            return None
        try:
            return _spec_of(stored)
        except (InvalidParametersError, ValueError) as error:  # a damaged row: as good as unknown
            logger.error("task %s in the store cannot be read back: %s", task_id, error)
            return None

    async def finished_records(self, query: TaskQuery, *, limit: int, offset: int) -> list[TaskRecord]:
        await self.drain()
        found = await self.store.finished_records(query, limit=limit, offset=offset)
        return [record for data in found if (record := _record(data)) is not None]

    async def drain(self) -> None:
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    def _write(self, write: Awaitable[None]) -> asyncio.Future[None]:
        # The store queued the write when it was called, so it has the facts in the order they happened,
        # awaited or not.
        pending = asyncio.ensure_future(write)
        if pending not in self._writes:  # (facts written behind share their commit's future)
            self._writes.add(pending)
            pending.add_done_callback(self._written)
        return pending

    def _written(self, write: asyncio.Future[None]) -> None:
        self._writes.discard(write)
        if not write.cancelled() and write.exception() is not None:
            logger.error("a task store write failed", exc_info=write.exception())


def _record(data: bytes | None) -> TaskRecord | None:
    return serial.record_of(data) if data else None


def _spec_of(stored: StoredTask) -> TaskSpec:
    if stored.options == serial.SPEC_FORMAT:
        return serial.spec_of(stored.task)
    return serial.legacy_spec(stored.task, stored.options)  # written by an older version
