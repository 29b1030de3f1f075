"""The journal's quick acceptance (`accepted_soon`): told as the store's commit ends, with any TaskStore."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import cast

from worker_abstraction.codec import encode_params
from worker_abstraction.options import TaskOptions
from worker_abstraction.orchestrator.homes.journal import StoreJournal
from worker_abstraction.stores.sqlite import SqliteTaskStore
from worker_abstraction.stores.tasks import TaskStore
from worker_abstraction.types import TaskSpec


def _spec(task_id: str) -> TaskSpec:
    return TaskSpec(task_id, "noop", {}, encode_params({}), TaskOptions(task_id=task_id), time.time_ns())


class _PlainStore:
    """A TaskStore of someone else's making: only the awaitables of `TaskStore`, no `flush`, no `then`."""

    def __init__(self, problem: Exception | None = None) -> None:
        self.problem = problem
        self.accepted_ids: list[str] = []

    async def accepted(
        self,
        task_id: str,
        task: bytes,
        options: str,
        *,
        capability: str = "",
        idempotency_key: str = "",
        reserved: int = 0,
        owner: str = "",
    ) -> None:
        if self.problem is not None:
            raise self.problem
        self.accepted_ids.append(task_id)


async def test_a_store_that_commits_when_asked_tells_the_acceptance_as_its_commit_ends(tmp_path: Path) -> None:
    store = await SqliteTaskStore(tmp_path / "tasks.db").open()
    try:
        journal = StoreJournal(store)
        told: list[BaseException | None] = []
        journal.accepted_soon(_spec("t-1"), told.append)
        assert told == []
        journal.flush()
        assert told == [None]  # no turn of the loop in between
        assert [task.spec.task_id for task in await journal.unfinished()] == ["t-1"]
    finally:
        await store.close()


async def test_a_store_without_flush_is_told_through_its_awaitables() -> None:
    store = _PlainStore()
    journal = StoreJournal(cast(TaskStore, store))
    told: list[BaseException | None] = []
    journal.accepted_soon(_spec("t-1"), told.append)
    journal.flush()  # nothing such a store can do at once
    await journal.drain()
    assert told == [None] and store.accepted_ids == ["t-1"]


async def test_a_store_without_flush_that_cannot_keep_an_acceptance_says_why() -> None:
    journal = StoreJournal(cast(TaskStore, _PlainStore(sqlite3.OperationalError("database or disk is full"))))
    told: list[BaseException | None] = []
    journal.accepted_soon(_spec("t-1"), told.append)
    await journal.drain()
    assert len(told) == 1 and isinstance(told[0], sqlite3.OperationalError)
