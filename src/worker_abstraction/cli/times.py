"""Times on the command line: durations (`90`, `1.5s`, `30s`, `5m`, `2h`, `1d`) and instants (ISO 8601)."""

from __future__ import annotations

import argparse
import re
from datetime import datetime

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def duration(text: str) -> float:
    """Seconds, from `90` or `90s`, `1.5m`, `2h`, `1d`, `250ms` (an argparse type)."""
    found = _DURATION.match(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"{text[:32]!r} is not a duration: write 90, 90s, 5m, 2h or 1d")
    return float(found.group(1)) * _UNITS[found.group(2)]


def instant(text: str) -> datetime:
    """An ISO 8601 instant such as 2026-12-08T09:00:00+01:00 or ...Z; without an offset, this machine's local
    time (an argparse type)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r} is not an ISO 8601 time: write e.g. 2026-12-08T09:00:00+01:00 or 2026-12-08T08:00Z"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()
