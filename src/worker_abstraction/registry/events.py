"""Fan-out of worker events to WatchWorkers subscribers."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

from worker_abstraction.types import WorkerInfo


class WorkerEventType(enum.IntEnum):
    """Mirrors the contract's WorkerEventType."""

    UNSPECIFIED = 0
    JOINED = 1
    UPDATED = 2
    LEFT = 3
    SYNCED = 4


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    type: WorkerEventType
    worker: WorkerInfo | None = None
    reason: str = ""


class SubscriberOverflowError(Exception):
    """A watcher fell too far behind; its stream ends and it resynchronises from a fresh snapshot."""


class EventHub:
    """Delivers each published event to every subscriber queue, dropping subscribers that fall behind."""

    def __init__(self, *, max_backlog: int = 10_000) -> None:
        self._subscribers: set[asyncio.Queue[WorkerEvent | None]] = set()
        self._max_backlog = max_backlog
        self.closed = False

    def subscribe(self) -> asyncio.Queue[WorkerEvent | None]:
        queue: asyncio.Queue[WorkerEvent | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[WorkerEvent | None]) -> None:
        self._subscribers.discard(queue)

    def publish(self, event: WorkerEvent) -> None:
        for queue in list(self._subscribers):
            if queue.qsize() >= self._max_backlog:
                # None tells the subscriber it overflowed; it stops reading and the client re-watches.
                self._subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)

    def close(self) -> None:
        self.closed = True
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()
