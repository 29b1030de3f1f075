"""When a schedule fires: a cron expression in a time zone, or a fixed interval; its occurrences as instants.

Cron expressions are read by croniter over the zone's local wall-clock times, then placed on the time line
with the zone's rules, so daylight-saving changes do what people expect of cron:

- A schedule at fixed times (its hour field names hours, e.g. `30 1 * * *`) fires once a day even when the
  clocks go back and 01:30 happens twice (the first 01:30), and fires once, that much later, when the
  clocks go forward over its time (`30 2 * * *` fires at 03:30 on that day).
- A schedule whose hour field is `*` (every hour, e.g. `*/15 * * * *`) follows real time instead: the
  repeated hour fires again, and nothing fires in the hour that does not exist.

An interval schedule fires every `every_seconds` from its anchor, in real time, whatever the zone.
Occurrences are whole seconds, so every daemon computes the same instants (a run's id is made from one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

MAX_EVERY_SECONDS = 366 * 86_400
_SEARCH = 5_000  # cron candidates looked at for one occurrence (a day of minutes is 1,440)


@dataclass(frozen=True, slots=True)
class Timing:
    """A cron expression (five fields, or `@hourly`, `@daily`...) in `timezone`, or every `every_seconds`
    (whole seconds) from `anchor` (an aware instant; the schedule's creation by default)."""

    cron: str = ""
    every_seconds: int = 0
    timezone: str = "UTC"
    anchor: datetime | None = None

    def problems(self) -> list[str]:
        """Every way this timing cannot be used (empty when it can)."""
        problems = []
        if bool(self.cron) == bool(self.every_seconds):
            problems.append("give a cron expression or every_seconds, one of the two")
        if self.cron and (len(self.cron) > 200 or not croniter.is_valid(self.cron) or len(self.cron.split()) > 5):
            problems.append(
                f"cron {self.cron[:60]!r} is not a cron expression of five fields (minute hour day month weekday), "
                "e.g. '*/15 * * * *' or '0 9 * * mon-fri'"
            )
        if self.every_seconds and (
            not isinstance(self.every_seconds, int)
            or isinstance(self.every_seconds, bool)
            or not 1 <= self.every_seconds <= MAX_EVERY_SECONDS
        ):
            problems.append(f"every_seconds must be a whole number of seconds, 1..{MAX_EVERY_SECONDS}")
        if self.anchor is not None and self.anchor.utcoffset() is None:
            problems.append("anchor must be a timezone-aware datetime")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            problems.append(f"timezone {self.timezone[:60]!r} is not an IANA time zone, e.g. 'Europe/Paris' or 'UTC'")
        if not problems and self.cron:
            try:
                self.after(datetime.now(UTC))
            except ValueError:
                problems.append(f"cron {self.cron[:60]!r} never fires (no such day)")
        return problems

    def after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (an aware instant), in UTC."""
        if self.every_seconds:
            return self._every_after(moment)
        return self._cron_after(moment)

    def between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The occurrences after `start` up to `end` (included), at most `limit` of them (the latest ones)."""
        found: list[datetime] = []
        moment = start
        while True:
            moment = self.after(moment)
            if moment > end:
                return found
            found.append(moment)
            if len(found) > limit:
                found.pop(0)

    # ---- inside ------------------------------------------------------------------------------------------

    def _every_after(self, moment: datetime) -> datetime:
        anchor = int((self.anchor or datetime(2000, 1, 1, tzinfo=UTC)).timestamp())
        at = moment.timestamp()
        steps = int((at - anchor) // self.every_seconds) + 1
        found = datetime.fromtimestamp(anchor + steps * self.every_seconds, UTC)
        return found if found > moment else found + timedelta(seconds=self.every_seconds)

    def _cron_after(self, moment: datetime) -> datetime:
        zone = ZoneInfo(self.timezone)
        every_hour = self._every_hour()
        window = timedelta(hours=3)
        # Far from a change of the zone's offset, wall-clock order is time order: the first candidate past
        # `moment` is the occurrence. Near one, an earlier wall time may stand for a later instant (the
        # repeated hour): the candidates from a little before are placed on the time line, and the earliest
        # instant past `moment` wins.
        steady = (moment - window).astimezone(zone).utcoffset() == (moment + window).astimezone(zone).utcoffset()
        local = moment.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        candidates = croniter(self.cron, local - timedelta(minutes=1) if steady else local - window)
        best: datetime | None = None
        best_wall = local
        try:
            for _ in range(_SEARCH):
                wall = candidates.get_next(datetime)
                if best is not None and (steady or wall > best_wall + window):
                    return best
                for instant in _instants(wall, zone, every_hour=every_hour):
                    if instant > moment and (best is None or instant < best):
                        best, best_wall = instant, wall
        except (CroniterBadDateError, ValueError, OverflowError):
            pass
        if best is not None:
            return best
        raise ValueError(f"cron {self.cron!r} has no occurrence soon after {moment.isoformat()}")

    def _every_hour(self) -> bool:
        fields = self.cron.split()
        if len(fields) == 1:  # @hourly, @daily, ...
            return fields[0] in ("@hourly",)
        return fields[1] == "*"


def _instants(wall: datetime, zone: ZoneInfo, *, every_hour: bool) -> list[datetime]:
    """The instants a local wall-clock time stands for in `zone` (see the module docstring)."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if _exists(first):
        if first.utcoffset() != second.utcoffset():  # the clocks went back: it happened twice
            return [first.astimezone(UTC), second.astimezone(UTC)] if every_hour else [first.astimezone(UTC)]
        return [first.astimezone(UTC)]
    # The clocks went forward over it: a fixed time fires that much later; an hourly one not at all.
    return [] if every_hour else [first.astimezone(UTC)]


def _exists(local: datetime) -> bool:
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(tzinfo=None) == local.replace(tzinfo=None)


def run_id(name: str, occurrence: datetime) -> str:
    """The id of a schedule's run for one occurrence: the same on every daemon, so it is claimed once."""
    return f"{name}@{occurrence.astimezone(UTC):%Y%m%dT%H%M%SZ}"
