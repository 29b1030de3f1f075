"""What every number, enum and well-known-type field of a request may hold: one table, one check per message.

`RULES` gives a rule to every integer, floating-point and enum field, and every google.protobuf.Timestamp,
of every message a request of worker.proto can carry (a test walks the services' request types and fails on
a field without a rule, or a rule without a field). `problems(request)` lists every field out of its range,
naming the field and what it may hold; a servicer answers them INVALID_ARGUMENT (in a stream: in the one
ack or refusal the message gets) before any handler computes with the value. So `after_sequence + 1` cannot
overflow an int64, a Timestamp with negative nanos never reaches `ToDatetime`, and NaN never reaches a timer.

Ranges are what the receiver can use, not what the wire type allows: an unset proto3 scalar reads as 0,
so a rule either admits 0 (and says what it means) or refuses the field unset as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.errors import InvalidRequestError
from worker_abstraction.options import MAX_ATTEMPTS, MAX_DELAY_SECONDS, MAX_TIMEOUT_SECONDS
from worker_abstraction.types import MAX_PAGE

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
UINT64_MAX = 2**64 - 1
# The highest resume point a watch may name: far past any task's update log, and far from int64's end, so
# the position after it (the one a watcher resuming from an older, longer stream is sent) always fits.
MAX_SEQUENCE = 2**53
# What google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
# A task's creation time is kept in nanoseconds and read back through a float: a second short of the end of
# year 9999, so the last instant's rounding cannot carry it into year 10000 (which datetime cannot hold).
_LAST_TASK_SECOND = MAX_TIMESTAMP_SECONDS - 1
_TIMEOUT = int(MAX_TIMEOUT_SECONDS)
_MAX_PROBLEMS = 20  # listed per request: a message carrying a thousand bad tasks is refused in a few lines


@dataclass(frozen=True, slots=True)
class Ints:
    """An integer field (each value of a repeated one) in lo..hi; `note` says what a special value means."""

    lo: int
    hi: int
    note: str = ""

    def describe(self) -> str:
        return f"{self.lo}..{self.hi}{self.note}"


@dataclass(frozen=True, slots=True)
class Reals:
    """A floating-point field: a finite number in lo..hi (NaN and the infinities are never in range)."""

    lo: float
    hi: float
    note: str = ""

    def describe(self) -> str:
        return f"a finite number in {self.lo:g}..{self.hi:g}{self.note}"


@dataclass(frozen=True, slots=True)
class Known:
    """An enum field: one of the values this version of the contract names."""


@dataclass(frozen=True, slots=True)
class Instant:
    """A google.protobuf.Timestamp field, when set: a valid one, with seconds in lo_seconds..hi_seconds."""

    lo_seconds: int = MIN_TIMESTAMP_SECONDS
    hi_seconds: int = MAX_TIMESTAMP_SECONDS

    def describe(self) -> str:
        return f"a Timestamp with seconds {self.lo_seconds}..{self.hi_seconds} and nanos 0..999999999"


Rule = Ints | Reals | Known | Instant

RULES: dict[str, Rule] = {
    # RegistryService
    "WorkerInfo.last_heartbeat": Instant(),  # (filled by the registry; what a worker sends is ignored)
    "WorkerInfo.current_load": Ints(0, INT32_MAX),
    "WorkerInfo.max_concurrent_tasks": Ints(0, INT32_MAX, " (0: no limit)"),
    "WorkerInfo.state": Known(),
    "ToolCapability.max_concurrent_tasks": Ints(0, INT32_MAX, " (0: only the worker's limit)"),
    "HeartbeatRequest.current_load": Ints(0, INT32_MAX),
    "LoadReport.free_slots": Ints(-1, INT32_MAX, " (-1: unlimited)"),
    "LoadReport.queued": Ints(0, INT32_MAX),
    "LoadReport.cpu_utilization": Reals(0, 1e6, " (cores)"),
    "LoadReport.mem_utilization": Reals(0, 1, " (a fraction of the machine's memory)"),
    "LoadReport.utilization": Reals(0, 1e12),  # (each value of the map)
    # WorkerService
    "Task.timeout_seconds": Ints(0, _TIMEOUT, " (0: none)"),
    "Task.created_at": Instant(lo_seconds=0, hi_seconds=_LAST_TASK_SECOND),
    "Task.priority": Ints(INT32_MIN, INT32_MAX),
    "Task.attempt": Ints(0, INT32_MAX, " (0: not numbered)"),
    "GetTaskStatusRequest.after_sequence": Ints(0, MAX_SEQUENCE, " (0: from the current state)"),
    # OrchestratorService
    "SubmitTaskRequest.queue_timeout_seconds": Reals(0, MAX_TIMEOUT_SECONDS),
    "SubmitTaskRequest.exact_timeout_seconds": Reals(0, MAX_TIMEOUT_SECONDS, " (0: none)"),
    "RetryPolicy.max_attempts": Ints(1, MAX_ATTEMPTS),
    "RetryPolicy.initial_backoff_seconds": Reals(0, MAX_TIMEOUT_SECONDS),
    "RetryPolicy.backoff_multiplier": Reals(1, 100),
    "RetryPolicy.max_backoff_seconds": Reals(0, MAX_TIMEOUT_SECONDS),
    "RetryPolicy.jitter": Reals(0, 1),
    "WatchTaskRequest.after_sequence": Ints(0, MAX_SEQUENCE, " (0: from the first update)"),
    "ListTasksRequest.statuses": Known(),
    "ListTasksRequest.limit": Ints(0, MAX_PAGE, " (0: 100)"),
    "ListTasksRequest.since": Instant(lo_seconds=0),
    "ListTasksRequest.until": Instant(lo_seconds=0),
    "SubmitTaskRequest.not_before": Instant(lo_seconds=0, hi_seconds=_LAST_TASK_SECOND),
    "SubmitTaskRequest.delay_seconds": Reals(0, MAX_DELAY_SECONDS, " (0: none)"),
    "SubmitTaskRequest.session_wait_seconds": Reals(0, MAX_TIMEOUT_SECONDS, " (0: the default)"),
    "VersionSplit.weights": Ints(0, 1_000_000),  # (each value of the map)
    "RunWorkflowRequest.not_before": Instant(lo_seconds=0, hi_seconds=_LAST_TASK_SECOND),
    "RunWorkflowRequest.delay_seconds": Reals(0, MAX_DELAY_SECONDS, " (0: none)"),
    "SessionSubmit.request_id": Ints(0, UINT64_MAX),
    "RateLimitSpec.burst": Ints(0, 1_000_000, " (0: the rate's count)"),
    "ConcurrencyLimitSpec.max_in_flight": Ints(1, 1_000_000),
    "RunWorkflowRequest.priority": Ints(INT32_MIN, INT32_MAX),
    "ListWorkflowsRequest.statuses": Known(),
    "ListWorkflowsRequest.limit": Ints(0, MAX_PAGE, " (0: 100)"),
    "WatchWorkflowRequest.after_sequence": Ints(0, MAX_SEQUENCE, " (0: from the first event)"),
    "ProvideInputRequest.attempt": Ints(0, INT32_MAX, " (0: the current one)"),
}

Check = Callable[[Message, str, list[str]], None]

_INTEGER_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_REAL_TYPES = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})
_PACKAGE = pb.DESCRIPTOR.package + "."


def problems(message: Message, where: str = "") -> list[str]:
    """Every field of `message` (at any depth) out of its range, each named by its path from `message`
    (prefixed by `where`, e.g. "task."), with what it may hold and what it holds; empty when all are fine."""
    descriptor = message.DESCRIPTOR
    check = _checks[descriptor] if descriptor in _checks else _check_of(descriptor)
    if check is None:
        return []
    found: list[str] = []
    check(message, where, found)
    return found if len(found) <= _MAX_PROBLEMS else found[:_MAX_PROBLEMS]


def rule_key(field: FieldDescriptor) -> str:
    """The key of `field`'s rule in RULES: its message's name (without the package) and its own."""
    owner = field.containing_type
    assert owner is not None  # (a field always belongs to a message)
    return f"{owner.full_name.removeprefix(_PACKAGE)}.{field.name}"


def needs_rule(field: FieldDescriptor) -> bool:
    """Whether a field of this type can be out of range (numbers, enums, well-known types)."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        entry = _message_type(field)
        if _is_map(field):
            return needs_rule(entry.fields_by_name["value"])
        # A well-known type (Timestamp; a Duration, Struct or Value added later) needs a rule; Empty holds nothing.
        return entry.full_name.startswith("google.protobuf.") and bool(entry.fields)
    return field.type in _INTEGER_TYPES or field.type in _REAL_TYPES or field.type == FieldDescriptor.TYPE_ENUM


def _message_type(field: FieldDescriptor) -> Descriptor:
    message_type = field.message_type
    assert message_type is not None  # (a message field has its type)
    return message_type


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and bool(_message_type(field).GetOptions().map_entry)


# One check function per message type, made once (bounded by the contract's types): the fields that have a
# rule, or that lead to one, as straight-line code. Every submission is checked, so this is what it costs:
# one call per message, no call per field while all is well.
_checks: dict[Any, Check | None] = {}


def _check_of(descriptor: Any) -> Check | None:
    """The check of one message type (its Descriptor, upb's or the pure one); None: nothing in it can be out
    of range (parameters, names, ...)."""
    if descriptor in _checks:
        return _checks[descriptor]
    _checks[descriptor] = None  # (a message type that contains itself: its own check is none)
    lines: list[str] = []
    names: dict[str, Any] = {"MAX": _MAX_PROBLEMS}
    for number, field in enumerate(descriptor.fields):
        lines += _field_lines(field, number, names)
    check = None
    if lines:
        source = "def check(m, where, found):\n" + "\n".join(f"    {line}" for line in lines)
        exec(compile(source, f"<bounds of {descriptor.full_name}>", "exec"), names)  # (code made from RULES alone)
        check = names["check"]
    _checks[descriptor] = check
    return check


def _field_lines(field: FieldDescriptor, number: int, names: dict[str, Any]) -> list[str]:
    name, label = field.name, repr(field.name + " ")
    if not needs_rule(field):
        if field.type != FieldDescriptor.TYPE_MESSAGE or _is_map(field):
            return []
        inner = _check_of(_message_type(field))
        if inner is None:
            return []
        names[f"C{number}"] = inner
        if field.is_repeated:
            return [
                f"for i, item in enumerate(m.{name}):",
                f"    C{number}(item, f'{{where}}{name}[{{i}}].', found)",
                "    if len(found) >= MAX: break",
            ]
        return [f"if m.HasField({name!r}): C{number}(m.{name}, where + {name + '.'!r}, found)"]
    rule = RULES.get(rule_key(field))
    if rule is None:
        return []  # (a field of a message no request carries; the coverage test holds the others)
    names[f"F{number}"] = _fault(field, rule)
    if isinstance(rule, Instant):
        names[f"LO{number}"], names[f"HI{number}"] = rule.lo_seconds, rule.hi_seconds
        bad = f"not (LO{number} <= v.seconds <= HI{number} and 0 <= v.nanos <= 999999999)"
    elif isinstance(rule, Known):
        enum = field.enum_type
        assert enum is not None  # (an enum field has its type)
        names[f"K{number}"] = frozenset(enum.values_by_number)
        bad = f"v not in K{number}"
    else:
        names[f"LO{number}"], names[f"HI{number}"] = rule.lo, rule.hi
        bad = f"not LO{number} <= v <= HI{number}"  # (NaN compares false: it is out of range too)
    report = f"found.append(where + {label} + F{number}(v))"
    if _is_map(field) or field.is_repeated:
        values = f"m.{name}.values()" if _is_map(field) else f"m.{name}"
        return [f"for v in {values}:", f"    if {bad}:", f"        {report}", "        break"]
    if field.has_presence:  # (proto3 `optional`, and message fields: unset is no value)
        return [f"if m.HasField({name!r}):", f"    v = m.{name}", f"    if {bad}: {report}"]
    return [f"v = m.{name}", f"if {bad}: {report}"]


def _fault(field: FieldDescriptor, rule: Rule) -> Callable[[Any], str | None]:
    """What is wrong with one value of the field ("must be ..., got ..."), or None."""
    if isinstance(rule, Instant):
        lo_seconds, hi_seconds, stamp_allowed = rule.lo_seconds, rule.hi_seconds, rule.describe()

        def instant_fault(stamp: Any) -> str | None:
            seconds, nanos = stamp.seconds, stamp.nanos
            if lo_seconds <= seconds <= hi_seconds and 0 <= nanos <= 999_999_999:
                return None
            return f"must be {stamp_allowed}, got seconds={seconds} nanos={nanos}"

        return instant_fault
    if isinstance(rule, Known):
        enum = field.enum_type
        assert enum is not None  # (an enum field has its type)
        known = frozenset(enum.values_by_number)
        names = ", ".join(v.name for v in enum.values)

        def enum_fault(value: Any) -> str | None:
            return None if value in known else f"must be one of {names}, got {value}"

        return enum_fault
    lo, hi, allowed = rule.lo, rule.hi, rule.describe()

    def range_fault(value: Any) -> str | None:
        return None if lo <= value <= hi else f"must be {allowed}, got {value}"  # (NaN: never in range)

    return range_fault


def check(message: Message, where: str = "") -> None:
    """Raises InvalidRequestError (INVALID_ARGUMENT) listing every field of `message` out of its range."""
    found = problems(message, where)
    if found:
        raise InvalidRequestError(found)
