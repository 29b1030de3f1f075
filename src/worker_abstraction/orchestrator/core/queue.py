"""The orchestrator's wait queue: priorities with aging, FIFO within a priority, fairness between keys.

Aging without re-sorting: a task gains one priority level per `aging_seconds` of waiting, so its
effective priority at time `now` is `priority + (now - enqueued) / aging_seconds`. Every waiting task
gains at the same rate, so the order between two tasks never changes while they wait, and one static sort
key orders the queue: `enqueued / aging_seconds - priority` (smaller runs first). A low-priority task is
overtaken by at most `aging_seconds x (priority gap)` worth of higher-priority arrivals: it cannot starve.

Fairness: each fairness key (e.g. a tenant) has its own heap. The next task comes from the keys whose head
has the highest effective priority level; among those, keys take turns (weighted round robin), so one
key's burst of 10,000 tasks does not delay another key's single task by more than one turn.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True, slots=True)
class QueuedTask:
    """A task waiting for a worker; ordered by its aging key, then by arrival."""

    sort_key: float
    arrival: int
    priority: int = field(compare=False)
    enqueued_at: float = field(compare=False)
    fairness_key: str = field(compare=False)
    payload: Any = field(compare=False)


class TaskQueue:
    """Tasks that share a capability and placement requirements, in the order they should run."""

    def __init__(self, *, aging_seconds: float, weights: Mapping[str, int] | None = None) -> None:
        if aging_seconds <= 0:
            raise ValueError(f"aging_seconds must be positive, got {aging_seconds}")
        self._aging = aging_seconds
        self._weights = weights or {}
        self._heaps: dict[str, list[QueuedTask]] = {}
        self._turns: deque[str] = deque()  # keys in round-robin order
        self._credit: dict[str, int] = {}
        self._arrivals = itertools.count()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, payload: Any, *, priority: int, fairness_key: str, now: float) -> QueuedTask:
        item = QueuedTask(
            sort_key=now / self._aging - priority,
            arrival=next(self._arrivals),
            priority=priority,
            enqueued_at=now,
            fairness_key=fairness_key,
            payload=payload,
        )
        self._push(item)
        return item

    def push_front(self, item: QueuedTask) -> None:
        """Put back a task that could not be dispatched; it keeps its place."""
        self._push(item)

    def _push(self, item: QueuedTask) -> None:
        heap = self._heaps.get(item.fairness_key)
        if heap is None:
            heap = self._heaps[item.fairness_key] = []
            self._turns.append(item.fairness_key)
            self._credit[item.fairness_key] = self._weights.get(item.fairness_key, 1)
        heapq.heappush(heap, item)
        self._size += 1

    def remove(self, item: QueuedTask) -> bool:
        """Take a waiting task out (it was canceled); False if it is not waiting here."""
        heap = self._heaps.get(item.fairness_key)
        if heap is None or item not in heap:
            return False
        heap.remove(item)
        heapq.heapify(heap)
        self._size -= 1
        if not heap:
            del self._heaps[item.fairness_key], self._credit[item.fairness_key]
            self._turns.remove(item.fairness_key)
        return True

    def peek(self, now: float) -> QueuedTask | None:
        """The task that should run next."""
        key = self._next_key(now)
        return self._heaps[key][0] if key is not None else None

    def pop(self, now: float) -> QueuedTask:
        key = self._next_key(now)
        if key is None:
            raise IndexError("pop from an empty TaskQueue")
        heap = self._heaps[key]
        item = heapq.heappop(heap)
        self._size -= 1
        self._credit[key] -= 1
        if not heap:
            del self._heaps[key], self._credit[key]
            self._turns.remove(key)
        elif self._credit[key] <= 0:
            self._credit[key] = self._weights.get(key, 1)
            self._turns.remove(key)
            self._turns.append(key)
        return item

    def head_level(self, now: float) -> float:
        """Effective priority of the task that would run next (-inf when empty)."""
        head = self.peek(now)
        return self._level(head, now) if head is not None else -math.inf

    def items(self) -> list[QueuedTask]:
        """The waiting tasks, oldest arrival first."""
        return sorted((item for heap in self._heaps.values() for item in heap), key=lambda item: item.arrival)

    def depth_by_priority(self) -> Counter[int]:
        return Counter(item.priority for heap in self._heaps.values() for item in heap)

    def _level(self, item: QueuedTask, now: float) -> float:
        return math.floor(item.priority + (now - item.enqueued_at) / self._aging)

    def _next_key(self, now: float) -> str | None:
        if len(self._turns) == 1:
            return self._turns[0]
        best_key, best_level = None, -math.inf
        for key in self._turns:  # in turn order: the first key at the best level wins ties
            level = self._level(self._heaps[key][0], now)
            if level > best_level:
                best_key, best_level = key, level
        return best_key
