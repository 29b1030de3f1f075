"""JournalReads: what a `PartitionedJournal` answers from its store (dead letters, finished records, submissions).

Each waits for the journal's writes on their way first where what it reads may be one of them (`drain`). A
task's record is read from its document as it stands: live in its partition, or moved to its finished key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from worker_abstraction import _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.errors import InvalidParametersError
from worker_abstraction.orchestrator.core.facts import Resumable
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStore
from worker_abstraction.orchestrator.homes.nats.records import matches, record_of
from worker_abstraction.types import DeadLetter, TaskQuery, TaskRecord, TaskSpec

logger = logging.getLogger(__name__)


class JournalReads:
    """The reads of a `PartitionedJournal` (which holds `_store` and makes `drain`)."""

    _store: PartitionedStore

    async def drain(self) -> None:
        """Wait for every write on its way (the journal's)."""
        raise NotImplementedError

    async def dead_letters(self) -> list[DeadLetter]:
        await self.drain()
        letters = []
        for entry in await self._store.letters.dead_letters():
            try:
                letters.append(_convert.dead_letter_from_pb(pb.DeadLetterEntry.FromString(entry)))
            except (InvalidParametersError, ValueError) as error:
                logger.error("skipping an unreadable dead letter: %s", error)
        return letters

    async def take_dead_letter(self, task_id: str) -> DeadLetter | None:
        await self.drain()
        entry = await self._store.letters.take_dead_letter(task_id)
        return None if entry is None else _convert.dead_letter_from_pb(pb.DeadLetterEntry.FromString(entry))

    async def purge_dead_letters(self, task_ids: Iterable[str] | None) -> int:
        await self.drain()
        ids = [letter.task_id for letter in await self.dead_letters()] if task_ids is None else list(task_ids)
        return sum([await self._store.letters.take_dead_letter(task_id) is not None for task_id in ids])

    async def unfinished(self) -> list[Resumable]:
        return []  # a partition's tasks come to whichever daemon holds it (PartitionedHome)

    async def finished_record(self, task_id: str) -> TaskRecord | None:
        found = await self._store.get(task_id)
        if found is None or not found[0].finished or not found[0].record:
            return None
        return _convert.record_from_pb(pb.TaskRecord.FromString(found[0].record))

    async def finished_by_key(self, idempotency_key: str) -> TaskRecord | None:
        task_id = await self._store.letters.key_holder(idempotency_key)
        return await self.finished_record(task_id) if task_id else None

    async def submission(self, task_id: str) -> TaskSpec | None:
        found = await self._store.get(task_id)
        return None if found is None else _convert.spec_from_pb(pb.SubmitTaskRequest.FromString(found[0].request))

    async def finished_records(self, query: TaskQuery, *, limit: int, offset: int) -> list[TaskRecord]:
        """Every task's record that matches `query` (as its document stands), most recently accepted first."""
        await self.drain()
        found = [doc for doc in await self._store.all_docs() if matches(query, doc)]
        found.sort(key=lambda doc: (-doc.accepted_at, doc.task_id))
        return [record_of(doc) for doc in found[offset : offset + limit]]
