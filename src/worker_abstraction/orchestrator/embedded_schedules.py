"""The embedded engine's schedule calls (`EmbeddedSchedules`, a mixin of `AsyncOrchestrator`): each waits for
the orchestrator to be started, then asks its timetable (`core.timetable`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.schedules.model import Schedule, ScheduleInfo

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.timetable import Timetable


class EmbeddedSchedules:
    """The schedule calls of `AsyncOrchestrator` (which holds `timetable` and `_ready`)."""

    timetable: Timetable

    async def _ready(self) -> None:
        raise NotImplementedError

    async def add_schedule(self, schedule: Schedule) -> ScheduleInfo:
        await self._ready()
        return await self.timetable.add(schedule, owner="")

    async def update_schedule(self, schedule: Schedule) -> ScheduleInfo:
        await self._ready()
        return await self.timetable.update(schedule)

    async def schedule(self, name: str) -> ScheduleInfo:
        await self._ready()
        return await self.timetable.get(name)

    async def schedules(self) -> list[ScheduleInfo]:
        await self._ready()
        return await self.timetable.all()

    async def pause_schedule(self, name: str) -> ScheduleInfo:
        await self._ready()
        return await self.timetable.pause(name)

    async def resume_schedule(self, name: str, *, run_now: bool = False) -> ScheduleInfo:
        await self._ready()
        info = await self.timetable.resume(name)
        if run_now:
            await self.timetable.trigger(name)
            info = await self.timetable.get(name)
        return info

    async def remove_schedule(self, name: str) -> bool:
        await self._ready()
        return await self.timetable.remove(name)

    async def trigger_schedule(self, name: str) -> AsyncTaskHandle:
        await self._ready()
        return await self.timetable.trigger(name)
