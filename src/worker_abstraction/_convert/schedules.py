"""Schedules as the contract carries them: a ScheduleInfo as a ScheduleRecord (its definition as JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from worker_abstraction._convert.workers import from_timestamp, set_timestamp
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.schedules.model import Schedule, ScheduleInfo, ScheduleState


def schedule_info_to_pb(info: ScheduleInfo) -> pb.ScheduleRecord:
    state = info.state
    message = pb.ScheduleRecord(
        name=info.name,
        schedule_json=json.dumps(info.schedule.to_dict(), ensure_ascii=False),
        paused=info.schedule.paused,
        last_run=state.last_run,
        fired=state.fired,
        skipped=state.skipped,
        last_error=state.last_error,
        owner=state.owner,
    )
    for field, moment in (
        (message.next_occurrence, info.next_occurrence),
        (message.last_occurrence, state.last_occurrence),
        (message.created_at, state.created_at),
        (message.resumed_at, state.resumed_at),
    ):
        if moment is not None:
            set_timestamp(field, moment)
    return message


def schedule_info_from_pb(message: pb.ScheduleRecord) -> ScheduleInfo:
    schedule = Schedule.from_dict(json.loads(message.schedule_json))
    state = ScheduleState(
        created_at=from_timestamp(message.created_at) or from_timestamp(message.last_occurrence) or _EPOCH,
        resumed_at=from_timestamp(message.resumed_at),
        last_occurrence=from_timestamp(message.last_occurrence),
        last_run=message.last_run,
        fired=message.fired,
        skipped=message.skipped,
        last_error=message.last_error,
        owner=message.owner,
    )
    return ScheduleInfo(schedule, state, from_timestamp(message.next_occurrence))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
