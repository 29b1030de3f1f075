"""Task identity: the ids the orchestrator makes (time-ordered, with when they were made in them), the check
of a capability's name, and a spec made whole on acceptance (an id, a creation time, a delay as an instant).
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import UTC, datetime

from worker_abstraction.codec import short
from worker_abstraction.errors import InvalidParametersError, InvalidTaskOptionsError
from worker_abstraction.options import MAX_DELAY_SECONDS, MAX_ID_LENGTH
from worker_abstraction.types import TaskSpec


def check_capability(capability: object) -> None:
    if not isinstance(capability, str) or not capability or len(capability) > MAX_ID_LENGTH:
        raise InvalidParametersError(
            [f"capability must be a name of 1..{MAX_ID_LENGTH} characters, got {short(capability)}"]
        )


def new_task_id() -> str:
    """A fresh task id, 32 hex digits: the millisecond it was made (48 bits), then 80 random bits.

    Ids made later sort later (as UUIDv7's and ULID's do), so a store's index on them grows at one end: a
    batch of new tasks touches a page or two of it, not one page per task (measured with the SQLite
    store: a quarter less CPU per task written, and the gap widens as the file grows).
    """
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def made_at(task_id: str) -> float | None:
    """When one of our ids was made (its first 48 bits: milliseconds; see `new_task_id`); None for others."""
    if len(task_id) != 32 or not all(c in "0123456789abcdef" for c in task_id):
        return None
    return int(task_id[:12], 16) / 1000


def identified(spec: TaskSpec) -> TaskSpec:
    """The spec with an id (a new one of ours unless it has one) and a creation time, and a delay as the
    instant it ends (counted from its acceptance, here).

    Raises:
        InvalidTaskOptionsError: a start further ahead than `MAX_DELAY_SECONDS`.
    """
    if not (spec.task_id and spec.created_at_ns):
        spec = TaskSpec(
            spec.task_id or new_task_id(),
            spec.capability,
            spec.params,
            spec.encoded_params,
            spec.options,
            time.time_ns(),
            spec.owner,
            spec.trace_context,
        )
    options = spec.options
    if options.not_before is None and not options.delay_seconds:
        return spec
    accepted_at = spec.created_at_ns / 1e9
    not_before = options.not_before
    if options.delay_seconds:
        due = datetime.fromtimestamp(accepted_at + options.delay_seconds, UTC)
        not_before = due if not_before is None else max(not_before, due)
        spec = dataclasses.replace(spec, options=dataclasses.replace(options, not_before=not_before, delay_seconds=0.0))
    assert not_before is not None
    if not_before.timestamp() - time.time() > MAX_DELAY_SECONDS:
        raise InvalidTaskOptionsError(
            [f"not_before may be at most {MAX_DELAY_SECONDS:g}s ahead, got {not_before.isoformat()}"]
        )
    return spec
