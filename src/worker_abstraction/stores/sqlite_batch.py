"""One group commit of the SQLite task store: its batch of facts, written in one transaction, and their waiters told.

A fact is one write (`sql`, its parameters), its own future (none if it is written behind) and who is told as
its commit ends. `commit` writes a batch (each fact on its own if one of them fails, so that only that one
fails); `settle` tells each fact's waiters how its write went.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

from worker_abstraction.stores.tasks import Stored

logger = logging.getLogger("worker_abstraction.stores.sqlite")  # (the store's: where its callbacks' failures were told)

# sql ("": moot), parameters, its own future (none if written behind), who is told as its commit ends
Fact = tuple[str, tuple[Any, ...], "asyncio.Future[None] | None", Stored | None]
MOOT: Fact = ("", (), None, None)


def commit(db: sqlite3.Connection | None, batch: list[Fact]) -> list[BaseException | None]:
    if db is None:
        return [sqlite3.ProgrammingError("the store is closed")] * len(batch)
    try:
        db.execute("BEGIN")
        # Consecutive writes of one kind go in one call (in their order): a turn's facts come in runs.
        start = 0
        while start < len(batch):
            sql = batch[start][0]
            end = start + 1
            while end < len(batch) and batch[end][0] == sql:
                end += 1
            if not sql:
                pass  # moot facts
            elif end - start == 1:
                db.execute(sql, batch[start][1])
            else:
                db.executemany(sql, [fact[1] for fact in batch[start:end]])
            start = end
        db.execute("COMMIT")
        return [None] * len(batch)
    except sqlite3.Error:
        if db.in_transaction:
            db.execute("ROLLBACK")
    # One statement failed: each on its own, so only that one fails.
    outcomes: list[BaseException | None] = []
    for sql, parameters, _, _ in batch:
        try:
            if sql:
                db.execute(sql, parameters)
            outcomes.append(None)
        except sqlite3.Error as error:
            outcomes.append(error)
    return outcomes


def settle(batch: list[Fact], outcomes: list[BaseException | None], behind: asyncio.Future[None] | None) -> None:
    failed: BaseException | None = None
    for (_, _, written, then), outcome in zip(batch, outcomes, strict=True):
        if then is not None:
            try:
                then(outcome)
            except Exception:  # (one waiter's fault: the others are still told, as a future's callbacks are)
                logger.exception("a task store write's callback failed")
        if written is None:
            failed = failed or outcome
        elif written.done():
            continue
        elif outcome is None:
            written.set_result(None)
        else:
            written.set_exception(outcome)
    if behind is not None and not behind.done():
        if failed is None:
            behind.set_result(None)
        else:
            behind.set_exception(failed)
