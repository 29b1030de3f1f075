"""Housekeeping: the writes a `PartitionedJournal` makes after the fact, in the background.

A finished task's document is moved out of its partition (`move`): copied to its finished key unless it is
stored there already, then its live key purged, fenced by the revision last written, so a daemon that gains
the partition later replays only what is unfinished. A move is not made again while under way or done lately,
and is tried again while NATS does not answer (then left to whoever holds the partition next).

Retention (`partitioned_expiry`): a finished task's idempotency key is written again with its TTL once its
end is stored (`expire_key`: by whoever moves it too, its holder may have died first).

Writes that nothing waits for (dead letters, key expiries, a journal's read-backs) are kept here as
background tasks (`spawn`, `keep`) and tried again while NATS does not answer (`retried`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable

from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStore
from worker_abstraction.stores.availability import Backoff, StoreAvailability
from worker_abstraction.stores.jetstream.connection import NatsStoreError, NatsUnavailableError
from worker_abstraction.stores.jetstream.pipeline import WrongLastSequenceError
from worker_abstraction.stores.jetstream.tasks import TaskDoc

logger = logging.getLogger(__name__)

LETTER_TRIES = 30
MOVE_TRIES = 60  # tries of a finished document's move (then the partition's next owner makes it)
_MOVED_REMEMBERED = 4096  # moves made lately, not made again when a late copy of the document is seen
_RETRY_FIRST_SECONDS = 0.1
_RETRY_CAP_SECONDS = 2.0


class Housekeeping:
    """The background writes of a `PartitionedJournal` (module docstring).

    Args:
        store: where they are written.
        availability: told of NATS answering or not.
    """

    def __init__(self, store: PartitionedStore, availability: StoreAvailability) -> None:
        self._store = store
        self._availability = availability
        self.background: set[asyncio.Task[None]] = set()
        self._moving: dict[str, asyncio.Task[None]] = {}  # (not waited for by `drain`: the next owner moves them)
        self._moved: OrderedDict[str, None] = OrderedDict()

    def move(self, doc: TaskDoc, revision: int, *, stored: bool = False) -> None:
        """Move a finished document out of its partition (module docstring): its live key purged if `revision`
        is still its last, after it is copied to its finished key unless it is `stored` there. Not made again
        while under way or done lately; tried again while NATS does not answer."""
        task_id = doc.task_id
        if task_id in self._moving or task_id in self._moved:
            return
        moving = asyncio.ensure_future(self._move(doc, revision, stored))
        self._moving[task_id] = moving
        moving.add_done_callback(functools.partial(self._move_ended, task_id))

    def moved(self, task_id: str) -> bool:
        """Whether a task's finished document is being moved, or was lately (by this daemon)."""
        return task_id in self._moving or task_id in self._moved

    @property
    def moving(self) -> int:
        """Finished documents being moved out of their partitions now."""
        return len(self._moving)

    def expire_key(self, doc: TaskDoc) -> None:
        """Let a finished task's idempotency key expire with it (under a retention), tried again while NATS does
        not answer."""
        if doc.idempotency_key and self._store.expiry.key_headers(doc.capability) is not None:
            self.spawn(self.retried(functools.partial(self._store.expire_key, doc), "let an idempotency key expire"))

    async def aclose(self) -> None:
        """Stop every background write and move."""
        for task in [*self.background, *self._moving.values()]:
            task.cancel()
        await asyncio.gather(*self.background, *self._moving.values(), return_exceptions=True)

    async def retried(self, write: Callable[[], object], what: str) -> None:
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        for attempt in range(1, LETTER_TRIES + 1):
            try:
                result = write()
                if asyncio.isfuture(result) or asyncio.iscoroutine(result):
                    await result
                return
            except NatsStoreError as error:
                if attempt == LETTER_TRIES:
                    logger.error("could not %s: %s", what, error)
                    return
                self._availability.failed(error)
                await asyncio.sleep(backoff.pause())

    def spawn(self, work: object) -> None:
        assert asyncio.iscoroutine(work)
        self.keep(asyncio.ensure_future(work))

    def keep(self, task: asyncio.Future[None]) -> None:
        assert isinstance(task, asyncio.Task)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _move(self, doc: TaskDoc, revision: int, stored: bool) -> None:
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        for attempt in range(1, MOVE_TRIES + 1):
            try:
                if stored:
                    with contextlib.suppress(WrongLastSequenceError):  # (purged before, or written since)
                        await self._store.purge_finished(doc.task_id, revision)
                else:
                    await self._store.move_finished(doc, revision)
                self.expire_key(doc)  # (its holder may have died before it did)
                return
            except NatsUnavailableError as error:
                if attempt == MOVE_TRIES:
                    logger.warning("task %s was not moved out of its partition: %s", doc.task_id, error)
                    return
                self._availability.failed(error)
                await asyncio.sleep(backoff.pause())
            except NatsStoreError as error:
                logger.error("task %s cannot be moved out of its partition: %s", doc.task_id, error)
                return

    def _move_ended(self, task_id: str, moving: asyncio.Task[None]) -> None:
        if self._moving.get(task_id) is moving:
            del self._moving[task_id]
        self._moved[task_id] = None
        if len(self._moved) > _MOVED_REMEMBERED:
            self._moved.popitem(last=False)
        if not moving.cancelled() and moving.exception() is not None:
            logger.error("moving task %s failed", task_id, exc_info=moving.exception())
