"""Retention: how long finished tasks (workflow runs too) and dead letters are kept, and the sweep that
drops them.

A sweep runs every `sweep_seconds`, in batches of `batch` deletions, resting after each batch as long as it
took: it takes at most about half of the loop's time, and submissions go on beside it (a sweep of 100,000
tasks with only a turn of the loop between batches of 500 tripled the p50 of the tasks submitted meanwhile;
so, and in batches of 100, it adds about a third, and takes 3 to 4 s on 2 vCPUs: bench scenario 9c). A task
expires `finished_seconds` (or its capability's own time) after it finished; its idempotency key expires
with it (the same key then makes a new task). An expired id is answered NOT_FOUND, saying that it may have
expired. Unfinished tasks never expire.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from worker_abstraction.codec import short
from worker_abstraction.errors import InvalidParametersError

MAX_RETENTION_SECONDS = 10 * 366 * 86_400.0


@dataclass(frozen=True, slots=True)
class Retention:
    """How long what ended is kept (None: for good).

    Args:
        finished_seconds: finished tasks, from their end.
        per_capability: the same for single capabilities (e.g. `{"wa.workflow": 30 * 86400}`).
        dead_letters_seconds: dead letters, from when they were kept.
        sweep_seconds: how often the sweep runs.
        batch: deletions per batch (each is one commit that holds the loop: about 0.4 ms for 100).
    """

    finished_seconds: float | None = None
    per_capability: Mapping[str, float] = field(default_factory=dict)
    dead_letters_seconds: float | None = None
    sweep_seconds: float = 60.0
    batch: int = 100

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_capability", dict(self.per_capability or {}))
        problems = []
        for name, value in (
            ("finished_seconds", self.finished_seconds),
            ("dead_letters_seconds", self.dead_letters_seconds),
            *((f"per_capability[{short(k)}]", v) for k, v in self.per_capability.items()),
        ):
            if value is not None and not _seconds(value):
                problems.append(f"{name} must be 0..{MAX_RETENTION_SECONDS:g} seconds or unset, got {short(value)}")
        if not _seconds(self.sweep_seconds) or self.sweep_seconds < 0.01:
            problems.append(f"sweep_seconds must be at least 0.01, got {short(self.sweep_seconds)}")
        if not isinstance(self.batch, int) or not 1 <= self.batch <= 100_000:
            problems.append(f"batch must be 1..100000, got {short(self.batch)}")
        if problems:
            raise InvalidParametersError(problems)

    @property
    def active(self) -> bool:
        return self.finished_seconds is not None or bool(self.per_capability) or self.dead_letters_seconds is not None

    def kept_for(self, capability: str) -> float | None:
        """How long a finished task of `capability` is kept (None: for good)."""
        return self.per_capability.get(capability, self.finished_seconds)

    def describe(self) -> str:
        kept = self.finished_seconds
        return "for good" if kept is None else f"{kept:g}s after they finish"


def _seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= MAX_RETENTION_SECONDS
    )
