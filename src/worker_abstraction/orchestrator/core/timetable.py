"""Timetable: the schedules of an engine, each occurrence fired as a task whose id is made from it.

One loop sleeps on one timer, until the earliest next occurrence of all schedules (nothing runs between
firings). An occurrence's run is the task `NAME@OCCURRENCE`, submitted with that id and the idempotency key
`schedule:NAME@OCCURRENCE`: when several engines share a home (NATS), each fires it, and the home's claim
lets one task through; the others hear it exists. So an occurrence runs once, whichever engines are up.

Occurrences due more than `ON_TIME_SECONDS` ago were missed (no engine was up): the schedule's `missed`
policy says which of them run. An occurrence while the previous run has not ended follows its `overlap`
policy. Paused schedules fire nothing, and resuming one counts occurrences from the resume on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from worker_abstraction.errors import (
    ScheduleNotFoundError,
    TaskExistsError,
    TaskNotFoundError,
    WorkerAbstractionError,
)
from worker_abstraction.options import TaskOptions, scoped_key
from worker_abstraction.orchestrator.core.clock import Clock, Timer
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Acceptance
from worker_abstraction.schedules.book import Document, ScheduleBook
from worker_abstraction.schedules.model import (
    MISSED_ALL,
    MISSED_LATEST,
    OVERLAP_ALLOW_ALL,
    OVERLAP_SKIP,
    Schedule,
    ScheduleInfo,
    ScheduleState,
)
from worker_abstraction.schedules.timing import Timing, run_id
from worker_abstraction.types import TaskRecord, TaskSpec

logger = logging.getLogger(__name__)

ON_TIME_SECONDS = 10.0  # an occurrence fired later than this after its time was missed
REFRESH_SECONDS = 2.0  # a shared book is read again this often (schedules made or changed elsewhere)
MAX_CATCH_UP = 100  # missed occurrences run at most, per schedule, with missed="all"
CRON_LOOKBACK = timedelta(days=7)  # missed cron occurrences are looked for this far back at most
_IDLE_SECONDS = 3600.0


class Firing(Protocol):
    """What the timetable asks of the engine."""

    def spec(
        self,
        capability: str,
        params: Mapping[str, Any] | None,
        options: TaskOptions,
        trace_context: tuple[tuple[str, str], ...] = (),
    ) -> TaskSpec: ...

    async def submit_spec(self, spec: TaskSpec) -> Acceptance: ...

    async def watch(self, task_id: str) -> AsyncTaskHandle: ...

    async def task(self, task_id: str) -> TaskRecord: ...


@dataclasses.dataclass(slots=True)
class _Entry:
    schedule: Schedule
    state: ScheduleState
    next: datetime | None = None
    buffered: datetime | None = None  # an occurrence waiting for the previous run's end (buffer_one)


class Timetable:
    """The schedules in `book`, fired on `engine` (see the module docstring)."""

    def __init__(self, book: ScheduleBook, engine: Firing, clock: Clock) -> None:
        self.book = book
        self._engine = engine
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._wake = asyncio.Event()
        self._timer: Timer | None = None
        self._loop: asyncio.Task[None] | None = None
        self._waits: set[asyncio.Task[None]] = set()
        self._refreshed_at = 0.0

    async def start(self) -> None:
        await self._reload()
        self._loop = asyncio.get_running_loop().create_task(self._run(), name="timetable")

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in [self._loop, *self._waits]:
            if task is not None:
                task.cancel()
        for task in [self._loop, *self._waits]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.book.aclose()

    # ---- what callers do --------------------------------------------------------------------------------

    async def add(self, schedule: Schedule, owner: str) -> ScheduleInfo:
        schedule.check()
        state = ScheduleState(created_at=self._now(), owner=owner)
        await self.book.create(schedule.name, _definition(schedule, state), _state(state))
        self._entries[schedule.name] = _Entry(schedule, state)
        self._rearm()
        return self._info(self._entries[schedule.name])

    async def update(self, schedule: Schedule) -> ScheduleInfo:
        schedule.check()
        entry = await self._entry(schedule.name)
        if entry.schedule.paused and not schedule.paused:  # unpaused: from now on, as `resume` does
            entry.state = dataclasses.replace(entry.state, resumed_at=self._now())
        await self.book.put_definition(schedule.name, _definition(schedule, entry.state))
        entry.schedule, entry.next = schedule, None
        self._rearm()
        return self._info(entry)

    async def pause(self, name: str) -> ScheduleInfo:
        entry = await self._entry(name)
        return await self.update(dataclasses.replace(entry.schedule, paused=True))

    async def resume(self, name: str) -> ScheduleInfo:
        """Fire again from now on: occurrences that passed while it was paused are not run."""
        entry = await self._entry(name)
        entry.state = dataclasses.replace(entry.state, resumed_at=self._now())
        return await self.update(dataclasses.replace(entry.schedule, paused=False))

    async def remove(self, name: str) -> bool:
        self._entries.pop(name, None)
        return await self.book.remove(name)

    async def trigger(self, name: str) -> AsyncTaskHandle:
        """Run the schedule's task now, once, whatever its timing and policies (a run of its own id)."""
        entry = await self._entry(name)
        now = self._now()
        handle = await self._submit(entry, f"{name}@manual-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}")
        await self._save(entry)
        return handle

    async def get(self, name: str) -> ScheduleInfo:
        return self._info(await self._entry(name))

    def counts(self) -> dict[str, int]:
        """Schedules known here, active and paused (what the metrics report)."""
        paused = sum(1 for entry in self._entries.values() if entry.schedule.paused)
        return {"active": len(self._entries) - paused, "paused": paused}

    async def all(self) -> list[ScheduleInfo]:
        if self.book.shared:
            await self._reload()
        return [self._info(entry) for _, entry in sorted(self._entries.items())]

    # ---- the loop ---------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._fire_due()
            except Exception:  # (a broken store or a bug must not stop every schedule for good)
                logger.exception("the timetable could not fire its due schedules; it tries again")
            self._rearm()
            await self._wake.wait()
            self._wake.clear()
            if self.book.shared and self._clock.now() - self._refreshed_at >= REFRESH_SECONDS:
                with contextlib.suppress(WorkerAbstractionError):
                    await self._reload()

    def _rearm(self) -> None:
        """One timer, at the earliest next occurrence of all schedules (made again when they change)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wait = self._seconds_to_next()
        if wait <= 0:  # due already (time passed while it fired the last ones)
            self._wake.set()
        else:
            self._timer = self._clock.call_later(wait, self._wake.set)

    def _seconds_to_next(self) -> float:
        now = self._now()
        nexts = [self._next_of(entry, now) for entry in self._entries.values()]
        soonest = min((n for n in nexts if n is not None), default=None)
        wait = _IDLE_SECONDS if soonest is None else max(0.0, (soonest - now).total_seconds())
        return min(wait, REFRESH_SECONDS) if self.book.shared else wait

    def _next_of(self, entry: _Entry, now: datetime) -> datetime | None:
        if entry.schedule.paused:
            return None
        if entry.next is None:
            entry.next = entry.state.timing(entry.schedule).after(entry.state.since(entry.schedule))
        return entry.next

    async def _fire_due(self) -> None:
        now = self._now()
        for entry in list(self._entries.values()):
            upcoming = self._next_of(entry, now)
            if upcoming is not None and upcoming <= now and entry.schedule.name in self._entries:
                await self._fire(entry, now)

    async def _fire(self, entry: _Entry, now: datetime) -> None:
        schedule = entry.schedule
        due, count = _due(entry.state.timing(schedule), entry.state.since(schedule), now)
        on_time = [moment for moment in due if (now - moment).total_seconds() <= ON_TIME_SECONDS]
        missed = [moment for moment in due if moment not in on_time]
        chosen = list(on_time)
        if missed and schedule.missed == MISSED_ALL:
            grace = timedelta(seconds=schedule.grace_seconds)
            chosen = [moment for moment in missed if now - moment <= grace][-MAX_CATCH_UP:] + chosen
        elif missed and schedule.missed == MISSED_LATEST and not on_time:
            chosen = [missed[-1]]
        passed = count - len(chosen)
        for moment in chosen:
            await self._occur(entry, moment)
        if due:
            entry.state = dataclasses.replace(
                entry.state, last_occurrence=due[-1], skipped=entry.state.skipped + passed
            )
        entry.next = entry.state.timing(schedule).after(max([now, *due]))
        await self._save(entry)

    async def _occur(self, entry: _Entry, moment: datetime) -> None:
        """One occurrence: run it, or follow the overlap policy while the previous run goes on."""
        schedule = entry.schedule
        previous = entry.state.last_run
        if schedule.overlap != OVERLAP_ALLOW_ALL and previous and await self._running(previous):
            if schedule.overlap == OVERLAP_SKIP or entry.buffered is not None:
                entry.state = dataclasses.replace(entry.state, skipped=entry.state.skipped + 1)
            if schedule.overlap != OVERLAP_SKIP:
                if entry.buffered is None:
                    self._wait_for(entry, previous)
                entry.buffered = moment
            return
        with contextlib.suppress(WorkerAbstractionError):
            await self._submit(entry, run_id(schedule.name, moment))

    async def _submit(self, entry: _Entry, task_id: str) -> AsyncTaskHandle:
        """Submit a run (its id claimed once: a run another engine made already is followed, not made)."""
        schedule, owner = entry.schedule, entry.state.owner
        key = scoped_key(owner, f"schedule:{task_id}")
        options = dataclasses.replace(schedule.options, task_id=task_id, idempotency_key=key)
        spec = dataclasses.replace(self._engine.spec(schedule.capability, schedule.params, options), owner=owner)
        # (the entry's state is read again after each wait: callers may change it meanwhile)
        try:
            acceptance = await self._engine.submit_spec(spec)
        except TaskExistsError:
            entry.state = dataclasses.replace(entry.state, last_run=task_id)
            return await self._engine.watch(task_id)
        except WorkerAbstractionError as error:
            logger.warning("schedule %s: run %s could not be submitted: %s", schedule.name, task_id, error)
            entry.state = dataclasses.replace(entry.state, last_run=task_id, last_error=str(error)[:500])
            raise
        fired = entry.state.fired + (0 if acceptance.duplicate else 1)
        entry.state = dataclasses.replace(entry.state, last_run=task_id, fired=fired, last_error="")
        return acceptance.handle

    async def _running(self, task_id: str) -> bool:
        try:
            record = await self._engine.task(task_id)
        except (TaskNotFoundError, WorkerAbstractionError):
            return False
        return not record.status.is_terminal

    def _wait_for(self, entry: _Entry, previous: str) -> None:
        async def then() -> None:
            with contextlib.suppress(WorkerAbstractionError):
                await (await self._engine.watch(previous)).wait()
            moment, entry.buffered = entry.buffered, None
            if moment is not None and self._entries.get(entry.schedule.name) is entry and not entry.schedule.paused:
                with contextlib.suppress(WorkerAbstractionError):
                    await self._submit(entry, run_id(entry.schedule.name, moment))
                await self._save(entry)

        waiting = asyncio.get_running_loop().create_task(then(), name=f"schedule {entry.schedule.name} buffered")
        self._waits.add(waiting)
        waiting.add_done_callback(self._waits.discard)

    # ---- the book ---------------------------------------------------------------------------------------

    async def _entry(self, name: str) -> _Entry:
        if self.book.shared or name not in self._entries:
            found = await self.book.get(name)
            if found is None:
                self._entries.pop(name, None)
                raise ScheduleNotFoundError(name)
            self._merge(*found)
        entry = self._entries.get(name)
        if entry is None:
            raise ScheduleNotFoundError(name)
        return entry

    async def _reload(self) -> None:
        self._refreshed_at = self._clock.now()
        found = await self.book.load()
        names = set()
        for definition, state in found:
            name = self._merge(definition, state)
            if name:
                names.add(name)
        for gone in set(self._entries) - names:
            del self._entries[gone]

    def _merge(self, definition: Document, state: Document) -> str:
        """Take a schedule as the book has it (the latest occurrence: the later of ours and the book's)."""
        try:
            schedule = Schedule.from_dict(definition["schedule"])
        except (WorkerAbstractionError, KeyError, TypeError, ValueError) as error:
            logger.warning("a stored schedule cannot be read, and is left alone: %s", error)
            return ""
        stored = ScheduleState.from_dict({**state, **{k: definition.get(k) for k in _DEFINED}})
        entry = self._entries.get(schedule.name)
        if entry is None:
            self._entries[schedule.name] = _Entry(schedule, stored)
            return schedule.name
        ours = entry.state.last_occurrence
        theirs = stored.last_occurrence
        if theirs is not None and (ours is None or theirs > ours):
            entry.state = dataclasses.replace(stored, fired=max(stored.fired, entry.state.fired))
            entry.next = None
        else:
            entry.state = dataclasses.replace(
                entry.state, created_at=stored.created_at, resumed_at=stored.resumed_at, owner=stored.owner
            )
        if entry.schedule != schedule:
            entry.schedule, entry.next = schedule, None
        return schedule.name

    async def _save(self, entry: _Entry) -> None:
        try:
            await self.book.put_state(entry.schedule.name, _state(entry.state))
        except WorkerAbstractionError as error:
            logger.warning("schedule %s: its state could not be stored: %s", entry.schedule.name, error)

    def _info(self, entry: _Entry) -> ScheduleInfo:
        upcoming = None if entry.schedule.paused else self._next_of(entry, self._now())
        return ScheduleInfo(entry.schedule, entry.state, upcoming)

    def _now(self) -> datetime:
        # To the millisecond: occurrences are whole seconds, and a timer set for one must find it due.
        return datetime.fromtimestamp(round(self._clock.wall(), 3), UTC)


_DEFINED = ("created_at", "resumed_at", "owner")  # the state a caller's change sets: kept with the definition


def _definition(schedule: Schedule, state: ScheduleState) -> Document:
    made = state.to_dict()
    return {"schedule": schedule.to_dict(), **{key: made[key] for key in _DEFINED}}


def _state(state: ScheduleState) -> Document:
    made = state.to_dict()
    return {key: value for key, value in made.items() if key not in _DEFINED}


def _due(timing: Timing, since: datetime, now: datetime) -> tuple[list[datetime], int]:
    """The occurrences after `since` up to `now` (the latest `MAX_CATCH_UP + 1` of them), and how many."""
    if timing.every_seconds:
        first = timing.after(since)
        if first > now:
            return [], 0
        count = int((now - first).total_seconds() // timing.every_seconds) + 1
        last = first + timedelta(seconds=(count - 1) * timing.every_seconds)
        kept = min(count, MAX_CATCH_UP + 1)
        return [last - timedelta(seconds=i * timing.every_seconds) for i in reversed(range(kept))], count
    found = timing.between(max(since, now - CRON_LOOKBACK), now, MAX_CATCH_UP + 1)
    return found, len(found)
