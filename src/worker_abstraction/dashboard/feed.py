"""The dashboard's live event hub: the latest tasks as rows, and the browsers that follow them.

`LiveFeed.accepted` is hung on the engine's `on_accepted` seam: it makes a row for each task and
subscribes to the task's updates, so every change of status reaches the hub as it happens, on the event
loop, without polling (streamed output chunks excepted: they change nothing a row shows, and a task's page
follows them on a stream of its own, see `hitl_routes`). Each connected browser holds a `Subscription`;
what is published is queued for it keyed by what it describes (one task's row, the overview), so a slow
browser gets the latest version of each thing instead of a growing backlog. Past `queue_limit` distinct
pending things it is sent one `reset` instead (reload the list), and its backlog is dropped.

Memory is bounded: `max_tasks` rows, `max_clients` subscriptions of at most `queue_limit` events each.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker_abstraction.dashboard.stats import Throughput
from worker_abstraction.dashboard.views import JSON, NameOf, text
from worker_abstraction.errors import WorkerAbstractionError
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.types import TaskStatus, TaskUpdate


def _exchange(update: TaskUpdate) -> bool:
    """An update that asks, answers or decides (and carries no progress of its own)."""
    if update.is_terminal:
        return False
    exchanged = update.input_request is not None or update.input_answer is not None or update.approval is not None
    return exchanged or update.status is TaskStatus.APPROVAL_REQUIRED


class TooManyClientsError(WorkerAbstractionError):
    """The feed already serves its maximum of browsers."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the dashboard serves at most {limit} live pages at once")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: its `kind` (the SSE event name) and JSON data."""

    kind: str
    data: Any


RESET = Event("reset", {})
CLOSED = Event("closed", {})


class Subscription:
    """What one browser has yet to be sent; iterate it with `next()`."""

    def __init__(self, feed: LiveFeed, queue_limit: int) -> None:
        self._feed = feed
        self._limit = queue_limit
        self._pending: OrderedDict[str, Event] = OrderedDict()
        self._wakeup = asyncio.Event()
        self.closed = False
        self.dropped = 0  # backlogs dropped because this browser read too slowly

    def offer(self, key: str, event: Event) -> None:
        if self.closed:
            return
        pending = self._pending
        if key in pending:
            pending[key] = event  # coalesced: only the latest state of a thing matters
        elif len(pending) >= self._limit:
            pending.clear()
            self.dropped += 1
            pending["reset"] = RESET
        elif "reset" not in pending or not key.startswith("task:"):  # a reset re-reads every task anyway
            pending[key] = event
        self._wakeup.set()

    async def next(self, timeout_seconds: float) -> Event | None:
        """The next event, `CLOSED` once the feed closed, or None after `timeout_seconds` of nothing."""
        if not self._pending and not self.closed:
            self._wakeup.clear()
            try:
                async with asyncio.timeout(timeout_seconds):
                    await self._wakeup.wait()
            except TimeoutError:
                return None
        if self._pending:
            return self._pending.popitem(last=False)[1]
        return CLOSED

    def close(self) -> None:
        """Stop this browser's stream; the feed forgets it."""
        self._feed.unsubscribe(self)

    def _end(self) -> None:
        self.closed = True
        self._pending.clear()
        self._wakeup.set()


class LiveFeed:
    """The latest tasks and the browsers following them.

    Args:
        max_tasks: rows kept (the most recently accepted tasks).
        max_clients: browsers that may follow at once; one more gets TooManyClientsError.
        queue_limit: distinct things pending for one browser before its backlog is replaced by a reset.
        window_seconds: how far back the throughput and latency series go.
        now: the wall clock (seconds since the epoch).
        monotonic: the clock latencies are measured with.
        name_of: a worker's name from its id, put in each row beside the id as the row changes.
    """

    def __init__(
        self,
        *,
        max_tasks: int = 500,
        max_clients: int = 16,
        queue_limit: int = 1_000,
        window_seconds: int = 300,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        name_of: NameOf | None = None,
    ) -> None:
        self.max_tasks = max_tasks
        self.max_clients = max_clients
        self._queue_limit = queue_limit
        self._now = now
        self._monotonic = monotonic
        self.name_of: NameOf = name_of or (lambda worker_id: "")
        self._rows: OrderedDict[str, JSON] = OrderedDict()
        self._clients: set[Subscription] = set()
        self.throughput = Throughput(window_seconds)

    # ---- the engine's side --------------------------------------------------------------------------

    def accepted(self, handle: AsyncTaskHandle) -> None:
        """A task was accepted (the engine's `on_accepted`): make its row and follow its updates."""
        task_id = handle.task_id
        now = self._now()
        row: JSON = {
            "task_id": task_id,
            "capability": handle.capability,
            "status": TaskStatus.PENDING.name,
            "worker_id": "",
            "worker_name": "",
            "attempt": 0,
            "progress": 0.0,
            "message": "",
            "error": "",
            "submitted_at": now,
            "updated_at": now,
            "latency": None,
        }
        self._rows[task_id] = row
        self._rows.move_to_end(task_id)
        while len(self._rows) > self.max_tasks:
            self._rows.popitem(last=False)
        self._publish_row(row)
        handle.subscribe(functools.partial(self._updated, task_id, self._monotonic()))

    def _updated(self, task_id: str, accepted_at: float, position: int, update: TaskUpdate) -> None:
        if update.chunk is not None:  # streamed output changes nothing a row shows (`hitl_routes` streams it)
            return
        now = self._now()
        if update.is_terminal:
            latency = max(0.0, self._monotonic() - accepted_at)
            self.throughput.record(now, update.status, latency)
        row = self._rows.get(task_id)
        if row is None:  # fell out of the list: counted above, not shown
            return
        row["status"] = update.status.name
        if update.worker_id and update.worker_id != row["worker_id"]:
            row["worker_id"], row["worker_name"] = update.worker_id, self.name_of(update.worker_id)
        row["attempt"] = update.attempt or row["attempt"]
        if not _exchange(update):  # a question, an answer or a decision says nothing of progress: kept
            row["progress"] = update.progress
            row["message"] = text(update.progress_message, 200)
        row["error"] = text(update.error_message, 300)
        row["updated_at"] = now
        if update.is_terminal:
            row["latency"] = latency
        self._publish_row(row)

    def _publish_row(self, row: JSON) -> None:
        if self._clients:
            self.publish(f"task:{row['task_id']}", Event("task", dict(row)))

    # ---- the browsers' side -------------------------------------------------------------------------

    def rows(self) -> list[JSON]:
        """The rows, most recently accepted first."""
        return [dict(row) for row in reversed(self._rows.values())]

    @property
    def clients(self) -> int:
        return len(self._clients)

    def subscribe(self) -> Subscription:
        """Follow the feed from now on.

        Raises:
            TooManyClientsError: `max_clients` browsers follow it already.
        """
        if len(self._clients) >= self.max_clients:
            raise TooManyClientsError(self.max_clients)
        subscription = Subscription(self, self._queue_limit)
        self._clients.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._clients.discard(subscription)
        subscription._end()

    def publish(self, key: str, event: Event) -> None:
        """Queue `event` for every browser; a pending event of the same `key` is replaced by it."""
        for client in self._clients:
            client.offer(key, event)

    def close(self) -> None:
        """End every browser's stream (the server is stopping)."""
        for client in list(self._clients):
            self.unsubscribe(client)
