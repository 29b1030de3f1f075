"""The engine's side of retention (see `core.retention`): one sweep of what finished long enough ago (the
runs held here and, through the home, the store), the sweep that runs it every `sweep_seconds`, when a
finished record is dropped, and the NOT_FOUND that says an old id may have expired.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from worker_abstraction.errors import TaskNotFoundError
from worker_abstraction.observability.metrics import OrchestratorMetrics
from worker_abstraction.orchestrator.core.home import TaskHome
from worker_abstraction.orchestrator.core.identity import made_at
from worker_abstraction.orchestrator.core.records import TaskIndex
from worker_abstraction.orchestrator.core.retention import Retention
from worker_abstraction.types import TaskRecord

logger = logging.getLogger("worker_abstraction.orchestrator.core.engine")  # (its logs are the engine's)


async def expire_now(
    index: TaskIndex, home: TaskHome, retention: Retention, metrics: OrchestratorMetrics | None
) -> list[str]:
    """One retention sweep, now: the ids of the finished tasks dropped (see `core.retention`)."""
    now = time.time()
    expired = index.expired(retention.kept_for, now)
    index.forget(expired)
    expire = getattr(home, "expire", None)
    stored: list[str] = await expire(retention, now) if expire is not None else []
    index.forget(stored)
    dropped = list(dict.fromkeys([*expired, *stored]))  # (one held in memory is in the store too)
    if dropped and metrics is not None:
        metrics.tasks_expired(len(dropped))
    return dropped


async def sweep(retention: Retention, expire: Callable[[], Awaitable[list[str]]]) -> None:
    """Run `expire` every `retention.sweep_seconds`, for good (a failed sweep is logged; the next one runs)."""
    while True:
        await asyncio.sleep(retention.sweep_seconds)
        try:
            expired = await expire()
        except Exception:  # (a store that does not answer now may later: the sweep goes on)
            logger.exception("the retention sweep failed; it runs again in %gs", retention.sweep_seconds)
            continue
        if expired:
            logger.info("retention: %d finished task(s) expired", len(expired))


def expiring(record: TaskRecord, retention: Retention) -> TaskRecord:
    """The record with when it is dropped, if it finished and its capability has a retention."""
    kept = retention.kept_for(record.capability)
    last = record.last_update
    if kept is None or last is None or not record.status.is_terminal or not last.timestamp_ns:
        return record
    return dataclasses.replace(record, expires_at=datetime.fromtimestamp(last.timestamp_ns / 1e9 + kept, UTC))


def unknown(task_id: str, retention: Retention) -> TaskNotFoundError:
    """NOT_FOUND for a task; one made before what retention keeps says that it may have expired."""
    times = [retention.finished_seconds, *retention.per_capability.values()]
    kept = min((t for t in times if t is not None), default=None)  # (its capability is unknown here)
    made = made_at(task_id)
    if kept is not None and made is not None and made < time.time() - kept:
        return TaskNotFoundError(task_id, f"the orchestrator (it may have expired: finished tasks are kept {kept:g}s)")
    return TaskNotFoundError(task_id, "the orchestrator")
