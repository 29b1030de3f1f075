"""Times on the wire: a datetime becomes the Timestamp protobuf's own conversion would give, and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from worker_abstraction._convert.workers import from_timestamp, timestamp


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(1960, 5, 3, 23, 59, 59, 999999, tzinfo=UTC),  # before the epoch: negative seconds
        datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2020, 2, 29, 12, 0, 0, 1),  # naive: read as UTC
        datetime(1970, 1, 1, tzinfo=UTC),
    ],
)
def test_a_datetime_becomes_the_timestamp_protobuf_would_make(moment: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(moment)
    made = timestamp(moment)
    assert (made.seconds, made.nanos) == (expected.seconds, expected.nanos)
    if made.seconds or made.nanos:  # (the zero Timestamp reads as "no time")
        back = from_timestamp(made)
        assert back == (moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def test_no_datetime_means_now() -> None:
    before = datetime.now(UTC)
    made = from_timestamp(timestamp())
    assert made is not None and before <= made <= datetime.now(UTC)
