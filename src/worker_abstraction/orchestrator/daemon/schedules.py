"""OrchestratorService's schedule calls: the embedded orchestrator's timetable, with the callers' rules.

A schedule is its maker's: its runs are submitted under that principal, so making or changing one needs the
right to call its capability (a workflow's: every capability its steps call), and a `client` sees and
touches only its own schedules (another's is answered as unknown), as with tasks.
"""

from __future__ import annotations

import json

from worker_abstraction import _convert, auth
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.codec import short
from worker_abstraction.errors import InvalidParametersError, ScheduleNotFoundError
from worker_abstraction.orchestrator.core.timetable import Timetable
from worker_abstraction.schedules.model import Schedule, ScheduleInfo
from worker_abstraction.workflows.records import definition_of, step_capabilities
from worker_abstraction.workflows.steps import WORKFLOW_CAPABILITY

MAX_SCHEDULE_BYTES = 256 * 1024


async def create(timetable: Timetable, request: pb.ScheduleRequest) -> pb.ScheduleRecord:
    schedule = _schedule(request.schedule_json)
    return _convert.schedule_info_to_pb(await timetable.add(schedule, owner=auth.current_owner()))


async def update(timetable: Timetable, request: pb.ScheduleRequest) -> pb.ScheduleRecord:
    schedule = _schedule(request.schedule_json)
    await _visible(timetable, schedule.name)
    return _convert.schedule_info_to_pb(await timetable.update(schedule))


async def get(timetable: Timetable, request: pb.ScheduleName) -> pb.ScheduleRecord:
    return _convert.schedule_info_to_pb(await _visible(timetable, request.name))


async def listed(timetable: Timetable) -> pb.ScheduleList:
    mine = auth.restricted_to()
    found = [info for info in await timetable.all() if mine is None or info.state.owner == mine]
    return pb.ScheduleList(schedules=[_convert.schedule_info_to_pb(info) for info in found])


async def pause(timetable: Timetable, request: pb.ScheduleName) -> pb.ScheduleRecord:
    await _visible(timetable, request.name)
    return _convert.schedule_info_to_pb(await timetable.pause(request.name))


async def resume(timetable: Timetable, request: pb.ResumeScheduleRequest) -> pb.ScheduleRecord:
    await _visible(timetable, request.name)
    info = await timetable.resume(request.name)
    if request.run_now:
        await timetable.trigger(request.name)
        info = await timetable.get(request.name)
    return _convert.schedule_info_to_pb(info)


async def delete(timetable: Timetable, request: pb.ScheduleName) -> pb.DeleteScheduleResponse:
    try:
        await _visible(timetable, request.name)
    except ScheduleNotFoundError:
        return pb.DeleteScheduleResponse(deleted=False)
    return pb.DeleteScheduleResponse(deleted=await timetable.remove(request.name))


async def trigger(timetable: Timetable, request: pb.ScheduleName) -> pb.SubmitTaskResponse:
    await _visible(timetable, request.name)
    handle = await timetable.trigger(request.name)
    return pb.SubmitTaskResponse(task_id=handle.task_id, worker_id=handle.worker_id)


async def _visible(timetable: Timetable, name: str) -> ScheduleInfo:
    """The schedule, if the caller may see it (ScheduleNotFoundError otherwise, as for an unknown one)."""
    if not name or len(name) > 100:
        raise InvalidParametersError([f"name {short(name)} must be a schedule's name (1-100 characters)"])
    info = await timetable.get(name)
    mine = auth.restricted_to()
    if mine is not None and info.state.owner != mine:
        raise ScheduleNotFoundError(name)
    return info


def _schedule(text: str) -> Schedule:
    """The schedule a request carries, checked, if the caller may call what it runs."""
    if not text.strip():
        raise InvalidParametersError(["schedule_json is empty; send the schedule as a JSON object"])
    if len(text) > MAX_SCHEDULE_BYTES:
        raise InvalidParametersError([f"schedule_json may be at most {MAX_SCHEDULE_BYTES} bytes, got {len(text)}"])
    try:
        data = json.loads(text)
    except RecursionError:
        raise InvalidParametersError(["schedule_json is nested too deeply"]) from None
    except ValueError as error:
        raise InvalidParametersError([f"schedule_json is not JSON: {short(str(error))}"]) from None
    schedule = Schedule.from_dict(data)
    if schedule.capability == WORKFLOW_CAPABILITY:
        for capability in sorted(step_capabilities(definition_of(schedule.params))):
            auth.check_may_call(capability)
    else:
        auth.check_may_call(schedule.capability)
    return schedule
