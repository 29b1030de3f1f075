"""Per-task options: one value object that travels from `execute_task` to the store and the wire.

`TaskOptions` is what a caller may say about a task besides its capability and arguments: deadlines,
placement, priority, retries, idempotency. Every layer passes the one object; none re-lists its fields.
`execute_task(..., **overrides)` takes the same names as keyword arguments (`TaskOptionFields`).

Both are checked where they are made, so a value that could wedge the engine (an overflowing timeout, a
megabyte of tags) never gets past the caller: every problem is listed in one `InvalidTaskOptionsError`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, TypedDict

from worker_abstraction.codec import short as _short
from worker_abstraction.errors import InvalidTaskOptionsError

# Bounds that keep one task's options small and every deadline representable (a year is far beyond any
# sane task, and far below where timers and datetimes overflow).
MAX_TIMEOUT_SECONDS = 366 * 24 * 3600.0
# How far ahead a delayed task may be set to start (the same year).
MAX_DELAY_SECONDS = MAX_TIMEOUT_SECONDS
# A task's run time when its caller gives none: long enough that a report, a batch job or an agent's loop is
# not cut short by surprise, finite so that a handler that hangs frees its slot, and ends its task, within
# the hour. Chosen, not inherited: Celery has no limit, Hatchet 60 s, Temporal makes the caller choose.
DEFAULT_TIMEOUT_SECONDS = 3600.0
MAX_ID_LENGTH = 256
MAX_TAGS = 64
MAX_METADATA_ENTRIES = 64
MAX_METADATA_VALUE_LENGTH = 4096
MAX_ATTEMPTS = 100
_REAL = (float, int)  # exactly these types (not bool): a quick check
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed attempt is tried again.

    Infrastructure failures (the worker died, became unreachable, lost the task or gave it up) are always
    retried, up to `max_attempts`: execution is at-least-once. Failures of the task itself (its handler
    raised, or it overran its timeout) are retried only with `retry_task_errors`, and never for the error
    types in `non_retryable_errors` (e.g. "ValueError", "DeadlineExceeded") nor for a failure its worker
    marked not retryable. A retry prefers a worker that has not failed the task yet.

    Args:
        max_attempts: attempts in all, the first included (1: never retry).
        initial_backoff_seconds: wait before the second attempt.
        backoff_multiplier: each further wait grows by this factor...
        max_backoff_seconds: ...up to this.
        jitter: each wait is spread by up to this fraction either way, so retries do not arrive in step.
        retry_task_errors: also retry failures of the task itself.
        non_retryable_errors: error types never retried.

    Raises:
        InvalidTaskOptionsError: a value out of range (all listed).
    """

    max_attempts: int = 3
    initial_backoff_seconds: float = 0.2
    backoff_multiplier: float = 2.0
    max_backoff_seconds: float = 30.0
    jitter: float = 0.2
    retry_task_errors: bool = False
    non_retryable_errors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "non_retryable_errors", tuple(self.non_retryable_errors))
        problems = []
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            problems.append(f"retry_policy.max_attempts must be 1..{MAX_ATTEMPTS}, got {self.max_attempts}")
        for name in ("initial_backoff_seconds", "max_backoff_seconds"):
            value = getattr(self, name)
            if not _number(value) or not 0 <= value <= MAX_TIMEOUT_SECONDS:
                problems.append(f"retry_policy.{name} must be 0..{MAX_TIMEOUT_SECONDS:g}, got {_short(value)}")
        if not _number(self.backoff_multiplier) or not 1 <= self.backoff_multiplier <= 100:
            problems.append(f"retry_policy.backoff_multiplier must be 1..100, got {_short(self.backoff_multiplier)}")
        if not _number(self.jitter) or not 0 <= self.jitter <= 1:
            problems.append(f"retry_policy.jitter must be 0..1, got {_short(self.jitter)}")
        problems += _strings("retry_policy.non_retryable_errors", self.non_retryable_errors, MAX_TAGS)
        if problems:
            raise InvalidTaskOptionsError(problems)

    def backoff_seconds(self, attempt: int) -> float:
        """How long to wait after failed attempt number `attempt` (1-based)."""
        exponent = min(max(attempt - 1, 0), 64)  # far past max_backoff already; keeps the power finite
        base = min(self.max_backoff_seconds, self.initial_backoff_seconds * self.backoff_multiplier**exponent)
        return max(0.0, base * random.uniform(1 - self.jitter, 1 + self.jitter))


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """Everything a caller may say about one task besides its capability and arguments.

    Args:
        timeout_seconds: how long the handler may run, counted from when it starts on a worker (default
            `DEFAULT_TIMEOUT_SECONDS`, one hour; 0: no limit).
        priority: higher runs first; waiting tasks age, so low priorities still run.
        fairness_key: e.g. a tenant; keys of equal priority take turns.
        required_tags: run only on workers carrying all these tags.
        preferred_tags: among fitting workers, prefer those carrying more of these tags.
        worker_id: run only on this worker (empty: any).
        metadata: free-form string metadata carried to the worker.
        task_id: the task's id (empty: a new random id). Ids are never reused: a known id is refused.
        retry_policy: overrides the orchestrator's default RetryPolicy (None: the default).
        queue_timeout_seconds: how long the task may wait for a worker (None: the orchestrator's default).
        idempotency_key: submitting again with a key already used returns the first submission's task.
        not_before: a delayed task: accepted and stored at once, sent to no worker before this instant (a
            timezone-aware datetime; None: at once). Its queue timeout counts from then.
        delay_seconds: the same, counted from when the orchestrator accepts the task (with both, the
            later instant wins); at most `MAX_DELAY_SECONDS`.
        require_approval: the task waits (APPROVAL_REQUIRED) until an operator approves it (`wa approve`),
            and ends CANCELED if one denies it (`wa deny`).
        session_key: the tasks of one key go to the worker the first of them went to, while it lives and has
            room (soft affinity); when it is gone the key moves, and the handler sees `ctx.session_moved`.
        version: the capability versions it may run on, a range such as "^2", "~1.4" or ">=1.2 <3" (empty:
            any; see `versions`). `execute_task("summarize@^2", ...)` says the same.
        session_hard: hard affinity: the task waits for its key's worker (busy, or gone and perhaps coming
            back) up to `session_wait_seconds` from its acceptance; then it goes as with soft affinity.
        session_wait_seconds: how long a hard-affine task waits for its key's worker (0: 30 seconds).

    Raises:
        InvalidTaskOptionsError: a value out of range or of the wrong type (all listed).
    """

    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    priority: int = 0
    fairness_key: str = ""
    required_tags: tuple[str, ...] = ()
    preferred_tags: tuple[str, ...] = ()
    worker_id: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    task_id: str = ""
    retry_policy: RetryPolicy | None = None
    queue_timeout_seconds: float | None = None
    idempotency_key: str = ""
    not_before: datetime | None = None
    delay_seconds: float = 0.0
    require_approval: bool = False
    session_key: str = ""
    version: str = ""
    session_hard: bool = False
    session_wait_seconds: float = 0.0

    def __post_init__(self) -> None:
        # Normalised so that equal options compare equal and callers may pass any iterable or None.
        object.__setattr__(self, "required_tags", tuple(sorted(_iterable(self.required_tags))))
        object.__setattr__(self, "preferred_tags", tuple(sorted(_iterable(self.preferred_tags))))
        object.__setattr__(self, "metadata", dict(self.metadata or {}))
        for name in ("fairness_key", "worker_id", "task_id", "idempotency_key", "session_key", "version"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, "")
        problems = self.problems()
        if problems:
            raise InvalidTaskOptionsError(problems)

    def problems(self) -> list[str]:
        """Every way these options break the bounds (empty when they are fine)."""
        if self._plainly_fine():
            return []
        problems = []
        if not _number(self.timeout_seconds) or not 0 <= self.timeout_seconds <= MAX_TIMEOUT_SECONDS:
            problems.append(
                f"timeout_seconds must be 0 (none) to {MAX_TIMEOUT_SECONDS:g}, got {_short(self.timeout_seconds)}"
            )
        if self.queue_timeout_seconds is not None and (
            not _number(self.queue_timeout_seconds) or not 0 <= self.queue_timeout_seconds <= MAX_TIMEOUT_SECONDS
        ):
            problems.append(
                f"queue_timeout_seconds must be 0..{MAX_TIMEOUT_SECONDS:g} or unset, "
                f"got {_short(self.queue_timeout_seconds)}"
            )
        if (
            not isinstance(self.priority, int)
            or isinstance(self.priority, bool)
            or not (_INT32[0] <= self.priority <= _INT32[1])
        ):
            problems.append(f"priority must be a 32-bit integer, got {_short(self.priority)}")
        for name in ("fairness_key", "worker_id", "task_id", "idempotency_key", "session_key"):
            problems += _strings(name, (getattr(self, name),), 1, allow_empty=True)
        problems += _strings("required_tags", self.required_tags, MAX_TAGS)
        problems += _strings("preferred_tags", self.preferred_tags, MAX_TAGS)
        if len(self.metadata) > MAX_METADATA_ENTRIES:
            problems.append(f"metadata may hold {MAX_METADATA_ENTRIES} entries, got {len(self.metadata)}")
        for key, value in list(self.metadata.items())[:MAX_METADATA_ENTRIES]:
            problems += _strings("metadata key", (key,), 1)
            if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE_LENGTH:
                problems.append(
                    f"metadata[{_short(key)}] must be a string of at most {MAX_METADATA_VALUE_LENGTH} characters"
                )
        if not _number(self.delay_seconds) or not 0 <= self.delay_seconds <= MAX_DELAY_SECONDS:
            problems.append(
                f"delay_seconds must be 0 (none) to {MAX_DELAY_SECONDS:g}, got {_short(self.delay_seconds)}"
            )
        if self.not_before is not None and (
            not isinstance(self.not_before, datetime) or self.not_before.utcoffset() is None
        ):
            problems.append(
                f"not_before must be a timezone-aware datetime (e.g. datetime.now(UTC) + timedelta(minutes=5)), "
                f"got {_short(self.not_before)}"
            )
        if not isinstance(self.version, str):
            problems.append(f"version must be a version range such as '^2', got {_short(self.version)}")
        elif self.version:
            from worker_abstraction.versions import range_problems

            problems += range_problems(self.version)
        if not isinstance(self.session_hard, bool):
            problems.append(f"session_hard must be True or False, got {_short(self.session_hard)}")
        if not _number(self.session_wait_seconds) or not 0 <= self.session_wait_seconds <= MAX_TIMEOUT_SECONDS:
            problems.append(
                f"session_wait_seconds must be 0 (the default) to {MAX_TIMEOUT_SECONDS:g}, "
                f"got {_short(self.session_wait_seconds)}"
            )
        if not isinstance(self.require_approval, bool):
            problems.append(f"require_approval must be True or False, got {_short(self.require_approval)}")
        if self.retry_policy is not None and not isinstance(self.retry_policy, RetryPolicy):
            problems.append(f"retry_policy must be a RetryPolicy, got {type(self.retry_policy).__name__}")
        return problems

    def _plainly_fine(self) -> bool:
        # The common case, checked in one pass (every task is checked): no tags, metadata or policy to
        # look into, numbers in range, short printable names. Anything else gets the full listing.
        if self.required_tags or self.preferred_tags or self.metadata or self.retry_policy is not None:
            return False
        if self.not_before is not None or self.delay_seconds != 0 or self.require_approval is not False:
            return False
        if self.version or self.session_hard is not False or self.session_wait_seconds != 0:
            return False
        timeout, queue_timeout, priority = self.timeout_seconds, self.queue_timeout_seconds, self.priority
        if type(timeout) not in _REAL or not 0 <= timeout <= MAX_TIMEOUT_SECONDS:
            return False
        if queue_timeout is not None and (
            type(queue_timeout) not in _REAL or not 0 <= queue_timeout <= MAX_TIMEOUT_SECONDS
        ):
            return False
        if type(priority) is not int or not _INT32[0] <= priority <= _INT32[1]:
            return False
        for text in (self.fairness_key, self.worker_id, self.task_id, self.idempotency_key, self.session_key):
            if type(text) is not str or len(text) > MAX_ID_LENGTH or not text.isprintable():
                return False
        return True


class TaskOptionFields(TypedDict, total=False):
    """`TaskOptions` as keyword arguments of `execute_task` (a test keeps the two in step)."""

    timeout_seconds: float
    priority: int
    fairness_key: str
    required_tags: tuple[str, ...] | list[str]
    preferred_tags: tuple[str, ...] | list[str]
    worker_id: str | None
    metadata: Mapping[str, str] | None
    task_id: str | None
    retry_policy: RetryPolicy | None
    queue_timeout_seconds: float | None
    idempotency_key: str | None
    not_before: datetime | None
    delay_seconds: float
    require_approval: bool
    session_key: str | None
    version: str | None
    session_hard: bool
    session_wait_seconds: float


OPTION_NAMES = frozenset(f.name for f in fields(TaskOptions))


def versioned(capability: str, options: TaskOptions) -> tuple[str, TaskOptions]:
    """A capability named with a version range, `summarize@^2`: (`summarize`, the options asking for `^2`);
    a version the options name already wins.

    Raises:
        InvalidTaskOptionsError: the range does not parse.
    """
    name, _, wanted = capability.partition("@")
    wanted = wanted.strip()
    if not wanted or options.version:
        return name, options
    return name, replace(options, version=wanted)


def options_of(options: TaskOptions | None, overrides: Mapping[str, Any]) -> TaskOptions:
    """`options` (or the defaults) with keyword overrides applied.

    Raises:
        InvalidTaskOptionsError: an unknown option name, or a value out of range.
    """
    unknown = sorted(set(overrides) - OPTION_NAMES)
    if unknown:
        known = ", ".join(sorted(OPTION_NAMES))
        raise InvalidTaskOptionsError([f"unknown task option {_short(name)} (known: {known})" for name in unknown])
    base = options if options is not None else _DEFAULTS
    return replace(base, **overrides) if overrides else base


def _iterable(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # a lone tag, not its letters
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise InvalidTaskOptionsError([f"expected a list of strings, got {_short(value)}"]) from None


def _strings(name: str, values: tuple[Any, ...], limit: int, *, allow_empty: bool = False) -> list[str]:
    problems = []
    if len(values) > limit:
        problems.append(f"{name} may hold {limit} entries, got {len(values)}")
    for value in values[:limit]:
        if not isinstance(value, str):
            problems.append(f"{name} must be strings, got {_short(value)}")
        elif len(value) > MAX_ID_LENGTH:
            problems.append(f"{name} must be at most {MAX_ID_LENGTH} characters, got {len(value)}: {_short(value)}")
        elif not value and not allow_empty:
            problems.append(f"{name} must not be empty")
        elif not value.isprintable():
            problems.append(f"{name} must be printable text, got {_short(value)}")
    return problems


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_DEFAULTS = TaskOptions()  # immutable: shared by every task submitted without options


def scoped_key(owner: str, key: str) -> str:
    """The idempotency key as stored: a principal's keys are its own (another's equal key names another
    task), so each is prefixed with its owner, unambiguously (the owner's length comes first)."""
    return f"principal:{len(owner)}:{owner}:{key}" if owner and key else key


def caller_key(owner: str, stored: str) -> str:
    """The idempotency key as its owner gave it (the inverse of `scoped_key`)."""
    prefix = f"principal:{len(owner)}:{owner}:"
    return stored[len(prefix) :] if owner and stored.startswith(prefix) else stored
