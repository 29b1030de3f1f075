"""Placement and capacity: which waiting task goes to which worker, and when.

Tasks wait in `TaskQueue`s, one per (capability, required tags, pinned worker), so tasks in one queue
can all use the same workers and the head of a queue never blocks a task that could run elsewhere.
A worker gets a task only while it has a free slot by the orchestrator's own count of tasks in flight
(its `max_concurrent_tasks`, and the capability's) and its standing allows it (proven, not suspect,
circuit closed); a worker that still refuses for capacity (another orchestrator filled it) is held back
until one of our tasks on it ends or a short back-off passes. Among the workers that fit, the one
carrying more preferred tags wins, then the one with the lowest share of its slots in use; remaining ties
rotate, so equal workers take turns.

A task asking for a version range fits only workers whose version of the capability is in it (its queue is
the range's own); a capability with a version split (`splits`) first narrows the candidates to the version
whose turn it is. A task with a session key prefers the key's worker (`sessions`); one with hard affinity
waits for it, in a queue of its own, until its session wait ends.

The scheduler knows tasks only as `Placeable`s; it reserves a slot, then tells the task where it goes.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

from worker_abstraction.errors import QueueFullError
from worker_abstraction.orchestrator.core.clock import Clock, Timer
from worker_abstraction.orchestrator.core.gates import Gates
from worker_abstraction.orchestrator.core.health import WorkerStanding, denied_everywhere
from worker_abstraction.orchestrator.core.queue import QueuedTask, TaskQueue
from worker_abstraction.orchestrator.core.sessions import SessionBindings
from worker_abstraction.orchestrator.core.splits import VersionSplits
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.types import WorkerInfo
from worker_abstraction.versions import VersionRange

logger = logging.getLogger(__name__)

# capability, required tags, pinned worker id, gate key, version range, hard session key
QueueKey = tuple[str, frozenset[str], str, str, str, str]

_UNLIMITED_SLOTS = 1024  # how an unlimited worker counts when comparing how busy workers are


class Placeable(Protocol):
    """A task as the scheduler sees it: what it needs, and where to tell it it goes."""

    @property
    def capability(self) -> str: ...

    @property
    def required_tags(self) -> frozenset[str]: ...

    @property
    def preferred_tags(self) -> frozenset[str]: ...

    @property
    def pinned(self) -> str: ...

    @property
    def priority(self) -> int: ...

    @property
    def fairness_key(self) -> str: ...

    @property
    def avoid(self) -> frozenset[str]:
        """Workers that failed it: others are preferred."""
        ...

    @property
    def session_key(self) -> str:
        """Its session key (see `sessions`; empty: none)."""
        ...

    @property
    def gate(self) -> str:
        """The key its capability's limits count it under ("" for none; see `gates`)."""
        ...

    @property
    def versions(self) -> VersionRange:
        """The capability versions it may run on."""
        ...

    @property
    def session_until(self) -> float:
        """Hard affinity: until this instant (the clock's) it waits for its key's worker (0: soft)."""
        ...

    def cancel_soon(self, reason: str) -> None:
        """Cancel it (a concurrency limit's strategy): at once if it waits, on its worker if it runs."""
        ...

    def place(self, worker: WorkerInfo) -> None:
        """A slot on `worker` is reserved for it: go there."""
        ...

    def deny(self, error: Exception) -> None:
        """No worker that could run it will take it from this orchestrator (it was taken out of line): end."""
        ...


class Scheduler:
    """Queues tasks and hands them to workers as slots free up."""

    def __init__(
        self,
        directory: WorkerDirectory,
        standing: WorkerStanding,
        clock: Clock,
        *,
        max_queued: int = 100_000,
        max_queued_per_capability: Mapping[str, int] | None = None,
        aging_seconds: float = 10.0,
        fairness_weights: Mapping[str, int] | None = None,
        gates: Gates | None = None,
    ) -> None:
        if max_queued < 0:
            raise ValueError(f"max_queued must be >= 0, got {max_queued}")
        self._directory = directory
        self._standing = standing
        self._clock = clock
        self._max_queued = max_queued
        self._max_per_capability = dict(max_queued_per_capability or {})
        self._aging = aging_seconds
        self._weights = dict(fairness_weights or {})
        self._queues: dict[QueueKey, TaskQueue] = {}
        self._entries: dict[Placeable, QueuedTask] = {}  # each task's place in line, kept for requeues
        self._came: dict[Placeable, float] = {}  # when each task placed without waiting came (its place, later)
        self._waiting_now: set[Placeable] = set()
        self._waiting: Counter[str] = Counter()
        self._reserved: dict[Placeable, str] = {}  # task -> the worker whose slot it holds
        self._in_flight: Counter[str] = Counter()
        self._in_flight_capability: Counter[tuple[str, str]] = Counter()
        self._held_back: dict[str, float] = {}  # worker id -> when it may get tasks again
        self.sessions = SessionBindings()  # session key -> its worker (bound as its tasks are placed: `attempts`)
        self.splits = VersionSplits()
        self._turn = 0
        self._pumping = False
        self.gates = gates or Gates()
        self._gate_timer: Timer | None = None
        self._gate_timer_at = math.inf
        self._gated: Counter[tuple[str, str]] = Counter()  # (capability, gate) -> tasks waiting on a limit now
        directory.on_change.append(self.pump)
        standing.on_recovered.append(self.pump)
        standing.on_denied.append(self.deny_refused)

    @property
    def waiting(self) -> int:
        return len(self._waiting_now)

    def waiting_for(self, capability: str) -> int:
        """Tasks for `capability` waiting for a worker."""
        return self._waiting[capability]

    def in_flight(self, worker_id: str) -> int:
        """This orchestrator's tasks holding a slot on the worker."""
        return self._in_flight[worker_id]

    def depths(self) -> dict[str, dict[int, int]]:
        """Waiting tasks per capability and priority."""
        depths: dict[str, Counter[int]] = {}
        for (capability, *_), queue in self._queues.items():
            depths.setdefault(capability, Counter()).update(queue.depth_by_priority())
        return {capability: dict(sorted(c.items(), reverse=True)) for capability, c in sorted(depths.items())}

    @property
    def workers(self) -> Mapping[str, WorkerInfo]:
        """The live workers, by id."""
        return self._directory.workers

    def check_room(self, capability: str) -> None:
        """Raise QueueFullError if a task for `capability` could not wait now."""
        limit = self._max_per_capability.get(capability)
        if limit is not None and self._waiting[capability] >= limit:
            raise QueueFullError(capability, limit, f"limit for capability {capability!r}")
        if len(self._waiting_now) >= self._max_queued:
            raise QueueFullError(capability, self._max_queued, "orchestrator limit")

    def enqueue(self, task: Placeable) -> None:
        """Queue a task (a new one's room was checked with `check_room`) and dispatch whatever can run now.

        A task that waited before (a retry, or a dispatch that did not happen) goes back to its old place
        in line; one that never waited (resumed after a restart straight onto a worker) joins at the back.
        """
        if task in self._waiting_now:
            return
        self.release(task)
        entry = self._entries.get(task)
        gated = self.gates.limited(task.capability)
        if gated and entry is None and self._came.get(task) is None and not self._admit_concurrency(task):
            return
        if entry is None and not self._waiting_now and not self._pumping and not (gated and self._gate_wait(task)):
            # Nothing waits, so the line is empty: a worker with room takes the task straight away (should
            # it wait later, its place in line is that of the moment it came).
            now = self._clock.now()
            worker = self._pick(task, now)
            if worker is not None:
                self._came.setdefault(task, now)
                self._start(task, worker)
                return
        queue = self._queue(task)
        if entry is None:
            came = self._came.pop(task, None)
            now = self._clock.now() if came is None else came
            self._entries[task] = queue.push(task, priority=task.priority, fairness_key=task.fairness_key, now=now)
        else:
            queue.push_front(entry)
        self._mark_waiting(task)
        self.pump()
        if task in self._waiting_now and (error := self.refused_everywhere(task)) is not None:
            self.withdraw(task)
            task.deny(error)

    def refused_everywhere(self, task: Placeable) -> Exception | None:
        """PermissionDeniedError when every worker that could run the task refuses our credentials."""
        fitting = [w for w in self._directory.capable(task.capability) if self.fits(task, w)]
        if not fitting or not all(self._standing.denial(w) for w in fitting):
            return None
        return denied_everywhere(task.capability, self._standing.denial(fitting[0]))

    def deny_refused(self) -> None:
        """A worker refused our credentials: end the waiting tasks that no other worker could run."""
        for task in list(self._waiting_now):
            if task in self._waiting_now and (error := self.refused_everywhere(task)) is not None:
                self.withdraw(task)
                task.deny(error)

    def withdraw(self, task: Placeable) -> bool:
        """Take a task out of line before it is dispatched; False if it is not waiting."""
        entry = self._entries.get(task)
        if task not in self._waiting_now or entry is None:
            return False
        key = _key(task)
        queue = self._queues.get(key)
        if queue is None or not queue.remove(entry):
            return False
        if not len(queue):
            del self._queues[key]
        self._unmark_waiting(task)
        return True

    def discard(self, task: Placeable) -> None:
        """The task ended: forget it entirely (out of line, its slot given back)."""
        self.withdraw(task)
        self.release(task)
        self._entries.pop(task, None)
        self._came.pop(task, None)

    def adopt(self, task: Placeable, worker_id: str) -> None:
        """Count a task already running on a worker (resumed after a restart) against that worker's slots."""
        self._reserve(task, worker_id)

    def release(self, task: Placeable) -> None:
        """Give back the slot a task holds (when its attempt ends, or before it waits again)."""
        worker_id = self._reserved.pop(task, None)
        if worker_id is None:
            return
        self._in_flight[worker_id] -= 1
        if not self._in_flight[worker_id]:
            del self._in_flight[worker_id]
        self._in_flight_capability[(worker_id, task.capability)] -= 1
        if self.gates.limited(task.capability):
            self.gates.vacate(task.capability, task.gate)
        self._held_back.pop(worker_id, None)  # it just finished one of ours: it has room again
        self.pump()

    def hold_back(self, worker_id: str, seconds: float) -> None:
        """Give the worker no tasks for a while (it refused one for capacity)."""
        self._held_back[worker_id] = self._clock.now() + seconds
        self._clock.call_later(seconds, self.pump)

    def fits(self, task: Placeable, worker: WorkerInfo) -> bool:
        """Whether the worker may ever run the task (capability, tags, pin), ignoring its load and standing."""
        spec = worker.capability(task.capability)
        if spec is None or (task.pinned and worker.worker_id != task.pinned):
            return False
        if task.versions.alternatives and not task.versions.allows(spec.semver):
            return False
        if spec.required_tags and not {t.lower() for t in spec.required_tags} <= worker.tag_set:
            return False
        return task.required_tags <= worker.tag_set

    def pump(self) -> None:
        """Hand queued tasks to workers with free slots, best effective priority first."""
        if self._pumping or not self._waiting_now:  # (a task placed below may end at once and pump again)
            return
        self._pumping = True
        try:
            now = self._clock.now()
            for key, queue in sorted(self._queues.items(), key=lambda kv: -kv[1].head_level(now)):
                while len(queue):
                    head = queue.peek(now)
                    assert head is not None
                    if key[3] or self.gates.limited(key[0]):
                        wait = self._gate_wait(head.payload)
                        if wait > 0:
                            self._gate_pump_in(wait)
                            break
                    worker = self._pick(head.payload, now)
                    if worker is None:
                        break
                    task: Placeable = queue.pop(now).payload
                    self._unmark_waiting(task)
                    self._start(task, worker)
                if not len(queue) and self._queues.get(key) is queue:
                    del self._queues[key]
        finally:
            self._pumping = False

    def gated(self) -> dict[str, tuple[int, float]]:
        """Per capability: tasks waiting on a limit, and the seconds until the first may start (inf: until
        one in flight ends)."""
        found: dict[str, tuple[int, float]] = {}
        for (capability, _, _, gate, _, _), queue in self._queues.items():
            if not self.gates.limited(capability) or not len(queue):
                continue
            wait = self.gates.wait(capability, gate, self._clock.now())
            if wait > 0:
                count, soonest = found.get(capability, (0, math.inf))
                found[capability] = (count + len(queue), min(soonest, wait))
        return found

    def _start(self, task: Placeable, worker: WorkerInfo) -> None:
        self._reserve(task, worker.worker_id)
        if self.gates.limited(task.capability):
            self.gates.started(task.capability, task.gate, self._clock.now())
        task.place(worker)

    def _gate_wait(self, task: Placeable) -> float:
        return self.gates.wait(task.capability, task.gate, self._clock.now())

    def _gate_pump_in(self, wait: float) -> None:
        """Pump again when the soonest closed gate opens (one timer; a task ending pumps anyway)."""
        if math.isinf(wait):
            return
        at = self._clock.now() + wait
        if at >= self._gate_timer_at and self._gate_timer is not None:
            return
        if self._gate_timer is not None:
            self._gate_timer.cancel()
        self._gate_timer_at = at
        self._gate_timer = self._clock.call_later(wait, self._gate_opened)

    def _gate_opened(self) -> None:
        self._gate_timer, self._gate_timer_at = None, math.inf
        self.pump()

    def _admit_concurrency(self, task: Placeable) -> bool:
        """A new task of a capability with a concurrency limit: its strategy (False: the task was canceled)."""
        limit = self.gates.strategy(task.capability)
        if limit is None or limit.strategy == "queue":
            return True
        held = [t for t, _ in self._reserved.items() if t.capability == task.capability and t.gate == task.gate]
        queue = self._queues.get(_key(task))
        waiting = [item.payload for item in queue.items()] if queue is not None else []
        room = max(1, self.gates.shared(limit.max_in_flight))
        if limit.strategy == "cancel_newest":
            if len(held) + len(waiting) >= room:
                task.cancel_soon(f"concurrency limit: {room} of key {task.gate or 'the capability'} run already")
                return False
            return True
        # cancel_in_progress: the newest stays; the oldest of the others go, waiting ones first.
        excess = len(held) + len(waiting) + 1 - room
        for older in [*waiting, *held][: max(0, excess)]:
            older.cancel_soon("superseded by a newer task of its key (concurrency limit, cancel_in_progress)")
        return True

    def _has_room(self, task: Placeable, worker: WorkerInfo, now: float) -> bool:
        if self._held_back.get(worker.worker_id, 0.0) > now or not self._standing.allows(worker, now):
            return False
        if worker.max_concurrent_tasks and self._in_flight[worker.worker_id] >= worker.max_concurrent_tasks:
            return False
        spec = worker.capability(task.capability)
        limit = spec.max_concurrent_tasks if spec is not None else 0
        return not limit or self._in_flight_capability[(worker.worker_id, task.capability)] < limit

    def _pick(self, task: Placeable, now: float) -> WorkerInfo | None:
        fitting = [w for w in self._directory.capable(task.capability) if self.fits(task, w)]
        candidates = [w for w in fitting if self._has_room(task, w, now)]
        bound = self.sessions.worker_of(task.session_key) if task.session_key else None
        if bound is not None and task.session_until:
            if now < task.session_until:  # hard affinity: its key's worker, or nothing yet
                candidates = [w for w in candidates if w.worker_id == bound]
                if not candidates:
                    self._gate_pump_in(task.session_until - now)
                    return None
            else:
                bound = None
        turn = None
        if task.capability in self.splits and not any(w.worker_id == bound for w in candidates):
            usable = [w for w in fitting if self._standing.allows(w, now)]  # (busy or not: see `splits`)
            turn = self.splits.turn(task.capability, usable)
            if turn is not None:
                candidates = [w for w in candidates if w.worker_id in turn.members]
        if not candidates:
            return None
        self._turn += 1
        count = len(candidates)
        avoid = task.avoid
        if bound is not None:
            spec = candidates[0].capability(task.capability)
            if spec is not None and spec.stateless:  # (nothing kept for the key: it goes anywhere)
                bound = None

        def preference(index: int) -> tuple[bool, bool, int, float, int]:
            worker = candidates[index]
            preferred = len(task.preferred_tags & worker.tag_set)
            share = self._in_flight[worker.worker_id] / (worker.max_concurrent_tasks or _UNLIMITED_SLOTS)
            elsewhere = worker.worker_id != bound  # (the key's worker first, when it has room)
            return (worker.worker_id in avoid, elsewhere, -preferred, share, (index - self._turn) % count)

        picked = candidates[min(range(count), key=preference)]
        if turn is not None:
            self.splits.take(task.capability, turn)
        return picked

    def _queue(self, task: Placeable) -> TaskQueue:
        key = _key(task)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = TaskQueue(aging_seconds=self._aging, weights=self._weights)
        return queue

    def _mark_waiting(self, task: Placeable) -> None:
        self._waiting_now.add(task)
        self._waiting[task.capability] += 1

    def _unmark_waiting(self, task: Placeable) -> None:
        self._waiting_now.discard(task)
        self._waiting[task.capability] -= 1

    def _reserve(self, task: Placeable, worker_id: str) -> None:
        self.release(task)
        self._reserved[task] = worker_id
        if self.gates.limited(task.capability):
            self.gates.occupy(task.capability, task.gate)
        self._in_flight[worker_id] += 1
        self._in_flight_capability[(worker_id, task.capability)] += 1


def _key(task: Placeable) -> QueueKey:
    hard = task.session_key if task.session_until else ""  # (waiting for its worker, it holds up no other)
    return (task.capability, task.required_tags, task.pinned, task.gate, task.versions.text, hard)
