"""A schedule: a named task (or workflow) fired on a cron expression or an interval, with its policies.

`Schedule` is what a caller says; `ScheduleState` what the orchestrator keeps of its firings;
`ScheduleInfo` both, with the next occurrence, as `schedule()` and `schedules()` return them. All three
travel as JSON (`to_dict` / `from_dict`): in the task home and in the contract.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from worker_abstraction.codec import short
from worker_abstraction.errors import InvalidParametersError, InvalidTaskOptionsError
from worker_abstraction.options import RetryPolicy, TaskOptions
from worker_abstraction.schedules.timing import Timing

# What happens to an occurrence while the schedule's previous run has not ended.
OVERLAP_SKIP = "skip"  # it is passed over
OVERLAP_BUFFER_ONE = "buffer_one"  # it waits for the previous run's end (one waits at most; a later one replaces it)
OVERLAP_ALLOW_ALL = "allow_all"  # it runs beside the previous one
OVERLAP = (OVERLAP_SKIP, OVERLAP_BUFFER_ONE, OVERLAP_ALLOW_ALL)
# What happens to occurrences missed while no orchestrator was up.
MISSED_SKIP = "skip"  # none of them runs
MISSED_LATEST = "latest"  # the latest of them runs, once
MISSED_ALL = "all"  # each of them within `grace_seconds` runs, in order
MISSED = (MISSED_SKIP, MISSED_LATEST, MISSED_ALL)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_DESCRIPTION = 1000
MAX_GRACE_SECONDS = 366 * 86_400.0
# Options of the task a schedule fires that are the schedule's to set, never the caller's.
_FIRED_OPTIONS = ("task_id", "idempotency_key", "not_before", "delay_seconds")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A task fired on a cron expression (`cron`, in `timezone`) or every `every_seconds`.

    Args:
        name: its id (letters, digits, `.`, `_`, `-`; up to 100): each run's task id is `NAME@OCCURRENCE`
            (e.g. `nightly@20261207T020000Z`), claimed once, so an occurrence runs once however many
            orchestrators share the schedule.
        capability, params, options: the task each occurrence runs (`WORKFLOW_CAPABILITY` with
            `{"workflow": ...}` runs a workflow: see `Schedule.of_workflow`).
        cron: five fields (minute hour day month weekday) or `@hourly`, `@daily`...; see `timing` for
            daylight-saving changes.
        every_seconds: instead of `cron`: a fixed interval, counted from `start_at` (or the creation).
        timezone: the IANA zone the cron expression is read in.
        overlap: `skip` (default), `buffer_one` or `allow_all`: an occurrence while the previous run goes.
        missed: `latest` (default), `skip` or `all`: occurrences missed while no orchestrator was up.
        grace_seconds: with `missed="all"`, how far back missed occurrences still run.
        start_at: no occurrence before it (None: from its creation).
        paused: a paused schedule fires nothing; resuming it never fires what passed meanwhile.
        description: free text.
    """

    name: str
    capability: str
    params: Mapping[str, Any] = field(default_factory=dict)
    cron: str = ""
    every_seconds: int = 0
    timezone: str = "UTC"
    overlap: str = OVERLAP_SKIP
    missed: str = MISSED_LATEST
    grace_seconds: float = 3600.0
    options: TaskOptions = field(default_factory=TaskOptions)
    start_at: datetime | None = None
    paused: bool = False
    description: str = ""

    @classmethod
    def of_workflow(cls, name: str, workflow: Any, **fields: Any) -> Schedule:
        """A schedule that runs a workflow (a `Workflow`, a canvas, or its file format as a dict)."""
        from worker_abstraction.workflows.steps import WORKFLOW_CAPABILITY

        definition = workflow.workflow() if hasattr(workflow, "workflow") else workflow
        definition = definition.to_dict() if hasattr(definition, "to_dict") else dict(definition)
        options = fields.pop("options", TaskOptions(timeout_seconds=0))
        return cls(name, WORKFLOW_CAPABILITY, {"workflow": definition}, options=options, **fields)

    @property
    def timing(self) -> Timing:
        anchor = self.start_at.replace(microsecond=0) if self.start_at is not None else None
        return Timing(self.cron, self.every_seconds, self.timezone, anchor)

    def problems(self) -> list[str]:
        """Every way this schedule breaks the rules (empty when it is fine)."""
        problems = []
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            problems.append(
                f"name {short(self.name)} must be 1-100 letters, digits, '.', '_' or '-', starting with a letter "
                "or digit"
            )
        if not isinstance(self.capability, str) or not 1 <= len(self.capability) <= 256:
            problems.append("capability must name a capability (1-256 characters)")
        if not isinstance(self.params, Mapping):
            problems.append(f"params must map names to values, got {short(self.params)}")
        problems += self.timing.problems()
        if self.overlap not in OVERLAP:
            problems.append(f"overlap must be one of {', '.join(OVERLAP)}, got {short(self.overlap)}")
        if self.missed not in MISSED:
            problems.append(f"missed must be one of {', '.join(MISSED)}, got {short(self.missed)}")
        grace = self.grace_seconds
        if not isinstance(grace, int | float) or isinstance(grace, bool) or not math.isfinite(grace):
            problems.append(f"grace_seconds must be a number of seconds, got {short(grace)}")
        elif not 0 <= grace <= MAX_GRACE_SECONDS:
            problems.append(f"grace_seconds must be 0..{MAX_GRACE_SECONDS:g}, got {grace:g}")
        if not isinstance(self.options, TaskOptions):
            problems.append(f"options must be TaskOptions, got {type(self.options).__name__}")
        else:
            taken = [name for name in _FIRED_OPTIONS if getattr(self.options, name) != getattr(TaskOptions(), name)]
            if taken:
                problems.append(f"a schedule sets {', '.join(taken)} of the tasks it fires itself: leave them unset")
        if self.start_at is not None and (not isinstance(self.start_at, datetime) or self.start_at.utcoffset() is None):
            problems.append("start_at must be a timezone-aware datetime")
        if not isinstance(self.description, str) or len(self.description) > MAX_DESCRIPTION:
            problems.append(f"description must be text of at most {MAX_DESCRIPTION} characters")
        return problems

    def check(self) -> Schedule:
        """This schedule, if it is fine.

        Raises:
            InvalidParametersError: every problem, listed.
        """
        problems = self.problems()
        if problems:
            raise InvalidParametersError(problems)
        return self

    def to_dict(self) -> dict[str, Any]:
        made: dict[str, Any] = {
            "name": self.name,
            "capability": self.capability,
            "params": dict(self.params),
            "timezone": self.timezone,
            "overlap": self.overlap,
            "missed": self.missed,
            "grace_seconds": self.grace_seconds,
            "paused": self.paused,
        }
        if self.cron:
            made["cron"] = self.cron
        if self.every_seconds:
            made["every_seconds"] = self.every_seconds
        options = options_to_dict(self.options)
        if options:
            made["options"] = options
        if self.start_at is not None:
            made["start_at"] = self.start_at.isoformat()
        if self.description:
            made["description"] = self.description
        return made

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        """A schedule from its JSON form (checked: InvalidParametersError lists every problem)."""
        if not isinstance(data, Mapping):
            raise InvalidParametersError([f"a schedule is a JSON object, got {type(data).__name__}"])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        problems = [f"unknown schedule fields: {short(unknown)} (known: {', '.join(sorted(known))})"] if unknown else []
        values = {name: data[name] for name in known & set(data)}
        try:
            values["options"] = options_from_dict(values.get("options") or {})
        except InvalidParametersError as error:
            problems += error.problems
            values.pop("options")
        if "start_at" in values:
            values["start_at"] = _instant("start_at", values["start_at"], problems)
        for name in ("name", "capability"):
            if name not in values:
                problems.append(f"{name} is missing")
        if problems:
            raise InvalidParametersError(problems)
        try:
            made = cls(**values)
        except TypeError as error:
            raise InvalidParametersError([str(error)]) from None
        return made.check()


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the orchestrators keep of a schedule's firings (shared by all of them on a shared home).

    Args:
        created_at: when it was made. resumed_at: when it was last resumed (nothing before it is missed).
        last_occurrence: the latest occurrence run, or passed over by its policies.
        last_run: the task id of its latest run.
        fired, skipped: occurrences run, and passed over (overlap, missed-run policy, pauses excluded).
        last_error: why the latest occurrence could not be run, if it could not.
        owner: the principal that made it (its runs are that principal's tasks).
    """

    created_at: datetime
    resumed_at: datetime | None = None
    last_occurrence: datetime | None = None
    last_run: str = ""
    fired: int = 0
    skipped: int = 0
    last_error: str = ""
    owner: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "created_at": self.created_at.isoformat(),
            "resumed_at": self.resumed_at.isoformat() if self.resumed_at is not None else None,
            "last_occurrence": self.last_occurrence.isoformat() if self.last_occurrence is not None else None,
            "last_run": self.last_run,
            "fired": self.fired,
            "skipped": self.skipped,
            "last_error": self.last_error,
            "owner": self.owner,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleState:
        def instant(name: str) -> datetime | None:
            value = data.get(name)
            return datetime.fromisoformat(value) if isinstance(value, str) and value else None

        return cls(
            created_at=instant("created_at") or datetime.now(UTC),
            resumed_at=instant("resumed_at"),
            last_occurrence=instant("last_occurrence"),
            last_run=str(data.get("last_run") or ""),
            fired=int(data.get("fired") or 0),
            skipped=int(data.get("skipped") or 0),
            last_error=str(data.get("last_error") or ""),
            owner=str(data.get("owner") or ""),
        )

    def timing(self, schedule: Schedule) -> Timing:
        """When the schedule fires: an interval counts from its `start_at`, or from its creation."""
        timing = schedule.timing
        if timing.every_seconds and timing.anchor is None:
            return Timing(timing.cron, timing.every_seconds, timing.timezone, self.created_at.replace(microsecond=0))
        return timing

    def since(self, schedule: Schedule) -> datetime:
        """The instant after which the schedule's occurrences count (none before: missed or not)."""
        moments = [self.created_at.replace(microsecond=0)]
        if self.resumed_at is not None:
            moments.append(self.resumed_at)
        if self.last_occurrence is not None:
            moments.append(self.last_occurrence)
        if schedule.start_at is not None:
            moments.append(schedule.start_at - _SECOND)  # (an occurrence at start_at itself counts)
        return max(moments)


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule as `schedule()` and `schedules()` give it: what it is, how it went, when it fires next
    (None while it is paused)."""

    schedule: Schedule
    state: ScheduleState
    next_occurrence: datetime | None

    @property
    def name(self) -> str:
        return self.schedule.name

    @property
    def timing(self) -> Timing:
        """When it fires (an interval from its `start_at`, or from its creation)."""
        return self.state.timing(self.schedule)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.schedule.to_dict(),
            **self.state.to_dict(),
            "next_occurrence": self.next_occurrence.isoformat() if self.next_occurrence is not None else None,
        }


def options_to_dict(options: TaskOptions) -> dict[str, Any]:
    """The options that differ from the defaults, as JSON."""
    default = TaskOptions()
    made: dict[str, Any] = {}
    for each in dataclasses.fields(TaskOptions):
        value = getattr(options, each.name)
        if value == getattr(default, each.name):
            continue
        if isinstance(value, RetryPolicy):
            value = {**dataclasses.asdict(value), "non_retryable_errors": list(value.non_retryable_errors)}
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        made[each.name] = value
    return made


def options_from_dict(data: Mapping[str, Any]) -> TaskOptions:
    """Options from their JSON form.

    Raises:
        InvalidParametersError: unknown names, or values out of range (every problem listed).
    """
    if not isinstance(data, Mapping):
        raise InvalidParametersError([f"options must be a JSON object, got {type(data).__name__}"])
    known = {f.name for f in dataclasses.fields(TaskOptions)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidParametersError([f"unknown task options {short(unknown)} (known: {', '.join(sorted(known))})"])
    values = dict(data)
    problems: list[str] = []
    policy = values.get("retry_policy")
    try:
        if isinstance(policy, Mapping):
            values["retry_policy"] = RetryPolicy(**policy)
        if "not_before" in values:
            values["not_before"] = _instant("not_before", values["not_before"], problems)
        if problems:
            raise InvalidParametersError(problems)
        return TaskOptions(**values)
    except InvalidTaskOptionsError:
        raise
    except TypeError as error:
        raise InvalidParametersError([f"options: {error}"]) from None


def _instant(name: str, value: Any, problems: list[str]) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{name} must be an ISO 8601 time with an offset, got {short(value)}")
        return None
    if moment.utcoffset() is None:
        problems.append(f"{name} must have an offset (e.g. +00:00 or Z), got {short(value)}")
        return None
    return moment


_SECOND = datetime(2000, 1, 1, 0, 0, 1, tzinfo=UTC) - datetime(2000, 1, 1, tzinfo=UTC)
