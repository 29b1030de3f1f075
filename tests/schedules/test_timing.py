"""When schedules fire: cron in real time zones across daylight-saving changes, intervals, and the checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from worker_abstraction.schedules import Schedule, Timing, run_id

NEW_YORK = "America/New_York"  # 2026: clocks forward 8 March 02:00 -> 03:00, back 1 November 02:00 -> 01:00


def _local(moments: list[datetime], zone: str) -> list[str]:
    from zoneinfo import ZoneInfo

    return [m.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M %Z") for m in moments]


def test_a_daily_time_in_the_repeated_hour_fires_once_when_the_clocks_go_back() -> None:
    timing = Timing(cron="30 1 * * *", timezone=NEW_YORK)
    start = datetime(2026, 10, 30, 12, tzinfo=UTC)
    fired = timing.between(start, start + timedelta(days=4), 100)
    assert _local(fired, NEW_YORK) == ["10-31 01:30 EDT", "11-01 01:30 EDT", "11-02 01:30 EST", "11-03 01:30 EST"]


def test_a_daily_time_in_the_skipped_hour_fires_once_that_much_later_when_the_clocks_go_forward() -> None:
    timing = Timing(cron="30 2 * * *", timezone=NEW_YORK)
    start = datetime(2026, 3, 6, 12, tzinfo=UTC)
    fired = timing.between(start, start + timedelta(days=4), 100)
    assert _local(fired, NEW_YORK) == ["03-07 02:30 EST", "03-08 03:30 EDT", "03-09 02:30 EDT", "03-10 02:30 EDT"]


def test_an_every_hour_schedule_follows_real_time_across_both_changes() -> None:
    timing = Timing(cron="*/30 * * * *", timezone=NEW_YORK)
    back = datetime(2026, 11, 1, 4, tzinfo=UTC)  # 00:00 EDT
    fired = timing.between(back, back + timedelta(hours=4), 100)
    assert [m.strftime("%H:%M") for m in fired] == [
        "04:30",
        "05:00",
        "05:30",
        "06:00",
        "06:30",
        "07:00",
        "07:30",
        "08:00",
    ]
    assert len(set(fired)) == len(fired)  # the repeated 01:00 and 01:30 fire again, an hour later, in real time
    forward = datetime(2026, 3, 8, 6, tzinfo=UTC)  # 01:00 EST
    fired = timing.between(forward, forward + timedelta(hours=2), 100)
    assert _local(fired, NEW_YORK) == ["03-08 01:30 EST", "03-08 03:00 EDT", "03-08 03:30 EDT", "03-08 04:00 EDT"]


def test_an_occurrence_is_found_from_anywhere_in_the_repeated_hour() -> None:
    timing = Timing(cron="*/30 * * * *", timezone=NEW_YORK)
    late_in_first_pass = datetime(2026, 11, 1, 5, 50, tzinfo=UTC)  # 01:50 EDT: next is 01:00 EST
    assert timing.after(late_in_first_pass) == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def test_an_interval_counts_whole_seconds_from_its_anchor_whatever_the_zone() -> None:
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    timing = Timing(every_seconds=7, timezone=NEW_YORK, anchor=anchor)
    assert timing.after(anchor) == anchor + timedelta(seconds=7)
    assert timing.after(anchor + timedelta(seconds=6.9)) == anchor + timedelta(seconds=7)
    assert timing.after(anchor + timedelta(seconds=7)) == anchor + timedelta(seconds=14)


def test_each_occurrence_has_one_run_id() -> None:
    moment = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    assert run_id("nightly", moment) == "nightly@20261207T093000Z"
    assert run_id("nightly", moment.astimezone(timezone(timedelta(hours=5)))) == run_id("nightly", moment)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"cron": "61 * * * *"}, "not a cron expression"),
        ({"cron": "0 0 31 2 *"}, "never fires"),
        ({"cron": "* * * * * *"}, "five fields"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "IANA"),
        ({"every_seconds": 0}, "one of the two"),
        ({"every_seconds": 10, "cron": "* * * * *"}, "one of the two"),
        ({"every_seconds": -5}, "every_seconds"),
        ({"every_seconds": 10, "overlap": "often"}, "overlap"),
        ({"every_seconds": 10, "missed": "maybe"}, "missed"),
        ({"every_seconds": 10, "grace_seconds": float("nan")}, "grace_seconds"),
        ({"every_seconds": 10, "start_at": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_a_schedule_that_cannot_work_says_why(fields: dict[str, object], says: str) -> None:
    problems = " / ".join(Schedule("s", "job", **fields).problems())  # type: ignore[arg-type]
    assert says in problems, problems


def test_a_schedule_round_trips_through_its_json_form() -> None:
    made = Schedule(
        "report", "report", {"day": "monday"}, cron="0 9 * * mon", timezone="Europe/Paris", overlap="buffer_one",
        missed="all", grace_seconds=600, start_at=datetime(2026, 12, 1, tzinfo=UTC), description="weekly",
    )  # fmt: skip
    assert Schedule.from_dict(made.to_dict()) == made
