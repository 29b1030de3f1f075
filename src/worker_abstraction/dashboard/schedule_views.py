"""Schedules as JSON-ready dicts for the dashboard: a row of the list, and one schedule with its next
occurrences and its recent runs.

Times are seconds since the epoch (the page shows them in the schedule's zone and in the viewer's). What
users wrote (names, descriptions, errors, parameters) is cut to a bounded length here; the page escapes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from worker_abstraction.dashboard.views import JSON, params_text, seconds, text
from worker_abstraction.schedules.model import ScheduleInfo, options_to_dict
from worker_abstraction.workflows.steps import WORKFLOW_CAPABILITY

NEXT_SHOWN = 10  # occurrences a schedule's page lists
ROW_ERROR = 300  # characters of the last error in the list (its page shows up to `views.MAX_TEXT`)
ROW_DESCRIPTION = 200  # characters of the description in the list


def runs_view(info: ScheduleInfo) -> JSON:
    """What each occurrence runs: a capability, or a workflow (its name, its count of steps)."""
    schedule = info.schedule
    if schedule.capability != WORKFLOW_CAPABILITY:
        return {"kind": "task", "capability": schedule.capability, "workflow": None, "steps": None}
    definition = schedule.params.get("workflow")
    name = definition.get("workflow") if isinstance(definition, Mapping) else None
    steps = definition.get("steps") if isinstance(definition, Mapping) else None
    return {
        "kind": "workflow",
        "capability": WORKFLOW_CAPABILITY,
        "workflow": text(name, 200) if isinstance(name, str) else "",
        "steps": len(steps) if isinstance(steps, list) else None,
    }


def timing_view(info: ScheduleInfo) -> JSON:
    schedule = info.schedule
    every = f"every {_span(schedule.every_seconds)}"
    said = f"cron {schedule.cron} ({schedule.timezone})" if schedule.cron else every
    return {
        "cron": schedule.cron,
        "every_seconds": schedule.every_seconds,
        "timezone": schedule.timezone,
        "start_at": seconds(schedule.start_at),
        "text": said,
    }


def schedule_row(info: ScheduleInfo, last_status: str | None) -> JSON:
    """A schedule as one row of the list; `last_status` is its latest run's status (None: unknown)."""
    state = info.state
    return {
        "name": info.name,
        "runs": runs_view(info),
        "timing": timing_view(info),
        "next_occurrence": seconds(info.next_occurrence),
        "paused": info.schedule.paused,
        "fired": state.fired,
        "skipped": state.skipped,
        "last_run": {"task_id": state.last_run, "status": last_status} if state.last_run else None,
        "last_occurrence": seconds(state.last_occurrence),
        "last_error": text(state.last_error, ROW_ERROR),
        "description": text(info.schedule.description, ROW_DESCRIPTION),
        "owner": state.owner,
    }


def schedule_view(
    info: ScheduleInfo,
    last_status: str | None,
    upcoming: list[datetime],
    runs: list[JSON],
    more_runs: bool,
    may: Mapping[str, bool],
) -> JSON:
    """One schedule: its row, every fact of its definition, its next occurrences and its recent runs."""
    schedule, state = info.schedule, info.state
    options: dict[str, Any] = options_to_dict(schedule.options)
    return {
        **schedule_row(info, last_status),
        "last_error": text(state.last_error),
        "description": text(schedule.description),
        "params": params_text(schedule.params) if schedule.capability != WORKFLOW_CAPABILITY else "",
        "options": params_text(options) if options else "",
        "overlap": schedule.overlap,
        "missed": schedule.missed,
        "grace_seconds": schedule.grace_seconds,
        "created_at": seconds(state.created_at),
        "resumed_at": seconds(state.resumed_at),
        "next_occurrences": [seconds(when) for when in upcoming],
        "recent_runs": runs,
        "more_runs": more_runs,
        "may": dict(may),
    }


def next_occurrences(info: ScheduleInfo, count: int = NEXT_SHOWN) -> list[datetime]:
    """The next `count` occurrences, from the orchestrator's next one on (none while paused)."""
    found: list[datetime] = []
    upcoming = info.next_occurrence
    while upcoming is not None and len(found) < count:
        found.append(upcoming)
        try:
            upcoming = info.timing.after(upcoming)
        except ValueError:  # a cron expression with no occurrence soon after this one
            upcoming = None
    return found


def _span(seconds_: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds_ >= size and seconds_ % size == 0:
            return f"{seconds_ // size}{unit}"
    return f"{seconds_}s"
