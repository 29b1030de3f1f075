"""What `wa schedule` prints (see `schedule_cmd`): one schedule fact by fact with its next occurrences, the
list as an aligned table, and both as JSON.

Times are shown in the schedule's own time zone (the one its cron expression is read in, so a change of
daylight-saving time shows where it happens), with how far off they are; JSON gives them in ISO 8601.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker_abstraction.schedules import ScheduleInfo, ScheduleState
from worker_abstraction.workflows.steps import WORKFLOW_CAPABILITY

NEXT_SHOWN = 5  # occurrences `get` lists
_COLUMNS = ("NAME", "RUNS", "TIMING", "NEXT", "LAST RUN", "FIRED", "SKIPPED", "PAUSED")
_CELL_WIDTH = 48  # a RUNS or LAST RUN cell is cut to this many characters
# Keys of `get --json` that are not the schedule's definition: `--from-json` drops them, so what `get
# --json` prints may be given back to `add` or `update` as it is.
REPORTED = frozenset(
    [field.name for field in dataclasses.fields(ScheduleState)]
    + ["next_occurrence", "next_occurrences", "last_run_status"]
)


def runs(info: ScheduleInfo) -> str:
    """What each occurrence runs: `capability` for a task, `workflow NAME` for a workflow."""
    schedule = info.schedule
    if schedule.capability != WORKFLOW_CAPABILITY:
        return schedule.capability
    definition = schedule.params.get("workflow")
    name = definition.get("workflow") if isinstance(definition, Mapping) else None
    return f"workflow {name}" if isinstance(name, str) and name else "workflow"


def timing(info: ScheduleInfo) -> str:
    """`cron '0 2 * * *' Europe/Paris`, or `every 30s` (with `from START` when it has a start)."""
    schedule = info.schedule
    made = f"cron {schedule.cron!r} {schedule.timezone}" if schedule.cron else f"every {span(schedule.every_seconds)}"
    if schedule.start_at is not None:
        made += f" from {moment(schedule.start_at, schedule.timezone)}"
    return made


def span(seconds: float) -> str:
    """A length of time in its largest whole unit: `45s`, `90s`, `5m`, `2h`, `1d`."""
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def moment(when: datetime, timezone: str) -> str:
    """`2026-12-08 02:00:00 CET`: the time in the schedule's zone (UTC when the zone is unknown here)."""
    try:
        zone: Any = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    local = when.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def relative(when: datetime, now: datetime) -> str:
    """`in 42s`, `in 3m04s`, `in 2h05m`, `in 3d04h`; `12s ago` and so on once it passed."""
    seconds = (when - now).total_seconds()
    ahead = seconds >= 0
    seconds = abs(seconds)
    if seconds < 60:
        told = f"{seconds:.0f}s"
    elif seconds < 3_600:
        told = f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"
    elif seconds < 86_400:
        told = f"{int(seconds) // 3_600}h{int(seconds) % 3_600 // 60:02d}m"
    else:
        told = f"{int(seconds) // 86_400}d{int(seconds) % 86_400 // 3_600:02d}h"
    return f"in {told}" if ahead else f"{told} ago"


def next_occurrences(info: ScheduleInfo, count: int = NEXT_SHOWN) -> list[datetime]:
    """The schedule's next `count` occurrences, from the daemon's next one on (none while it is paused)."""
    found: list[datetime] = []
    upcoming = info.next_occurrence
    timing_of = info.timing
    while upcoming is not None and len(found) < count:
        found.append(upcoming)
        try:
            upcoming = timing_of.after(upcoming)
        except ValueError:  # a cron expression with no occurrence soon after this one
            upcoming = None
    return found


def last_run(info: ScheduleInfo, status: str) -> str:
    """The latest run's task id, with its status when known."""
    if not info.state.last_run:
        return "-"
    return f"{info.state.last_run} {status}" if status else info.state.last_run


def render(info: ScheduleInfo, status: str = "", now: datetime | None = None) -> str:
    """The text of `wa schedule get`: one `key  value` line per fact, then the next occurrences."""
    now = now or datetime.now(UTC)
    schedule, state, zone = info.schedule, info.state, info.schedule.timezone
    facts: list[tuple[str, str]] = [("schedule", schedule.name), ("runs", runs(info))]
    if schedule.capability == WORKFLOW_CAPABILITY:
        definition = schedule.params.get("workflow")
        steps = definition.get("steps") if isinstance(definition, Mapping) else None
        facts.append(("steps", str(len(steps)) if isinstance(steps, list) else "?"))
    else:
        facts.append(("params", _compact(schedule.params)))
    facts += [
        ("timing", timing(info)),
        ("state", "paused" if schedule.paused else "active"),
        ("overlap", schedule.overlap),
        ("missed", schedule.missed + (f" (within {span(schedule.grace_seconds)})" if schedule.missed == "all" else "")),
    ]
    options = _options(schedule.to_dict().get("options") or {})
    if options:
        facts.append(("task options", _compact(options)))
    if schedule.description:
        facts.append(("description", " ".join(schedule.description.split())))
    facts.append(("created", f"{moment(state.created_at, zone)} ({relative(state.created_at, now)})"))
    if state.resumed_at is not None:
        facts.append(("resumed", f"{moment(state.resumed_at, zone)} ({relative(state.resumed_at, now)})"))
    if state.last_occurrence is not None:
        facts.append(
            ("last occurrence", f"{moment(state.last_occurrence, zone)} ({relative(state.last_occurrence, now)})")
        )
    facts += [("last run", last_run(info, status)), ("fired", str(state.fired)), ("skipped", str(state.skipped))]
    if state.last_error:
        facts.append(("last error", " ".join(state.last_error.split())))
    if state.owner:
        facts.append(("owner", state.owner))
    width = max(len(key) for key, _ in facts)
    lines = [f"{key:<{width}}  {value}" for key, value in facts]
    upcoming = next_occurrences(info)
    if not upcoming:
        lines.append("next: none while paused" if schedule.paused else "next: none")
        return "\n".join(lines)
    lines.append(f"next ({len(upcoming)}):")
    lines += [f"  {moment(when, zone)}  ({relative(when, now)})" for when in upcoming]
    return "\n".join(lines)


def render_table(infos: Sequence[ScheduleInfo], statuses: Mapping[str, str], now: datetime) -> str:
    """The schedules as an aligned text table with a header row, in the order given."""
    rows = [_COLUMNS] + [
        (
            info.name,
            _cut(runs(info)),
            timing(info),
            "-"
            if info.next_occurrence is None
            else f"{moment(info.next_occurrence, info.schedule.timezone)} ({relative(info.next_occurrence, now)})",
            _cut(last_run(info, statuses.get(info.name, ""))),
            str(info.state.fired),
            str(info.state.skipped),
            "yes" if info.schedule.paused else "no",
        )
        for info in infos
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def info_to_json(info: ScheduleInfo, status: str = "", *, upcoming: bool = False) -> dict[str, Any]:
    """The `--json` form of a schedule: `ScheduleInfo.to_dict()`, the latest run's status (or null), and with
    `upcoming` its next occurrences."""
    document = {**info.to_dict(), "last_run_status": status or None}
    if upcoming:
        document["next_occurrences"] = [when.isoformat() for when in next_occurrences(info)]
    return document


def definition_of(document: Any) -> Any:
    """A schedule's JSON form as `add --from-json` takes it: what `get --json` reports besides the definition
    is dropped (anything else is left for the definition's own check)."""
    if not isinstance(document, dict):
        return document
    return {key: value for key, value in document.items() if key not in REPORTED}


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The task options as set; of a retry policy, its attempts and whether it retries task errors, and what
    else it changes from a default RetryPolicy."""
    from worker_abstraction.options import RetryPolicy

    shown = dict(options)
    policy = shown.get("retry_policy")
    if isinstance(policy, Mapping):
        default = RetryPolicy()
        shown["retry_policy"] = {
            key: value
            for key, value in policy.items()
            if key in _ALWAYS_SHOWN or value != _listed(getattr(default, key, None))
        }
    return shown


_ALWAYS_SHOWN = ("max_attempts", "retry_task_errors")


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def _cut(text: str, width: int = _CELL_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
