"""Schedules: tasks (or workflows) fired on a cron expression or an interval, each occurrence once."""

from worker_abstraction.schedules.model import (
    MISSED_ALL,
    MISSED_LATEST,
    MISSED_SKIP,
    OVERLAP_ALLOW_ALL,
    OVERLAP_BUFFER_ONE,
    OVERLAP_SKIP,
    Schedule,
    ScheduleInfo,
    ScheduleState,
)
from worker_abstraction.schedules.timing import Timing, run_id

__all__ = [
    "MISSED_ALL",
    "MISSED_LATEST",
    "MISSED_SKIP",
    "OVERLAP_ALLOW_ALL",
    "OVERLAP_BUFFER_ONE",
    "OVERLAP_SKIP",
    "Schedule",
    "ScheduleInfo",
    "ScheduleState",
    "Timing",
    "run_id",
]
