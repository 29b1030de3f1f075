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
    """Delivers each published event to every subscriber queue, dropping subscribers that fall behind.

    A subscriber falls behind when its backlog holds `max_backlog` events or `max_backlog_bytes` of
    registrations (about: the text its workers declared), so a watcher that stops reading costs a bounded
    amount of memory however large the registrations are.
    """

    def __init__(self, *, max_backlog: int = 10_000, max_backlog_bytes: int = 16 * 2**20) -> None:
        self._subscribers: dict[asyncio.Queue[WorkerEvent | None], int] = {}  # queue -> bytes it holds
        self._max_backlog = max_backlog
        self._max_backlog_bytes = max_backlog_bytes
        self.closed = False

    def subscribe(self) -> asyncio.Queue[WorkerEvent | None]:
        queue: asyncio.Queue[WorkerEvent | None] = asyncio.Queue()
        self._subscribers[queue] = 0
        return queue

    def unsubscribe(self, queue: asyncio.Queue[WorkerEvent | None]) -> None:
        self._subscribers.pop(queue, None)

    async def next(self, queue: asyncio.Queue[WorkerEvent | None]) -> WorkerEvent | None:
        """The subscriber's next event (None: it overflowed, or the hub closed)."""
        event = await queue.get()
        if event is not None and queue in self._subscribers:
            self._subscribers[queue] -= _weight(event)
        return event

    def publish(self, event: WorkerEvent) -> None:
        weight = _weight(event)
        for queue, held in list(self._subscribers.items()):
            if queue.qsize() >= self._max_backlog or held + weight > self._max_backlog_bytes:
                # None tells the subscriber it overflowed; it stops reading and the client re-watches.
                del self._subscribers[queue]
                queue.put_nowait(None)
            else:
                self._subscribers[queue] = held + weight
                queue.put_nowait(event)

    def close(self) -> None:
        self.closed = True
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()


def _weight(event: WorkerEvent) -> int:
    """About how many bytes an event keeps alive: its worker's declared text, plus a fixed part."""
    worker = event.worker
    if worker is None:
        return 256
    size = 512 + len(worker.name) + len(worker.address) + sum(len(tag) for tag in worker.tags)
    for capability in worker.capabilities:
        size += 128 + len(capability.name) + len(capability.description) + len(capability.output_schema)
        size += sum(64 + len(p.name) + len(p.description) + len(p.json_schema) for p in capability.parameters)
    return size
