"""The package's own value types: frozen dataclasses and enums, free of protobuf."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from worker_abstraction._dataclass import quick_init
from worker_abstraction.errors import InvalidParametersError
from worker_abstraction.exchanges import Approval, InputAnswer, InputExchange, InputRequest, OutputChunk
from worker_abstraction.options import TaskOptions


class TaskStatus(enum.IntEnum):
    """Where a task is in its life; mirrors the contract's TaskStatus member for member."""

    UNKNOWN = 0
    PENDING = 1
    RUNNING = 2
    COMPLETED = 3
    FAILED = 4
    CANCELED = 5
    INPUT_REQUIRED = 6  # the handler asked for input and waits for an answer
    APPROVAL_REQUIRED = 7  # the task waits for an operator's approval before it goes to a worker

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELED})


class WorkerState(enum.IntEnum):
    """A worker's standing in the registry; mirrors the contract's WorkerState member for member.

    ACTIVE: heartbeating. SUSPECT: silent for longer than the registry's `suspect_after_seconds` but not
    yet past its TTL; still listed, best not given new work. EVICTED: removed for silence (only in the
    LEFT event). UNSPECIFIED is what a seed registry sends, which knows no states; it reads as ACTIVE.
    """

    UNSPECIFIED = 0
    ACTIVE = 1
    SUSPECT = 2
    EVICTED = 3


# JSON types a ToolParameter may declare, with the short forms the seed's examples use.
PARAMETER_TYPES: dict[str, str] = {
    "string": "string",
    "str": "string",
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "object": "object",
    "dict": "object",
    "array": "array",
    "list": "array",
    "any": "any",
    "null": "null",
}


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    """One parameter of a capability."""

    name: str
    type: str
    description: str = ""
    required: bool = True
    json_schema: str = ""  # the full JSON Schema as JSON text; empty: only `type` is checked


@dataclass(frozen=True, slots=True)
class CapabilitySpec:
    """What a capability is called, what it does and which parameters it takes."""

    name: str
    description: str = ""
    parameters: tuple[ParameterSpec, ...] = ()
    max_concurrent_tasks: int = 0  # per worker; 0: only the worker's own limit
    required_tags: tuple[str, ...] = ()  # worker tags this capability needs, e.g. ("gpu",)
    version: str = ""  # its semantic version (empty: "1.0.0"; see `versions`)
    output_schema: str = ""  # the JSON Schema of its output, as JSON text (empty: not declared)
    deprecated: str = ""  # this version is deprecated: what to use instead (empty: it is not)
    stateless: bool = False  # it keeps no state between tasks: session keys do not bind its tasks

    @property
    def semver(self) -> str:
        """Its version, `1.0.0` when it declares none."""
        return self.version or "1.0.0"

    def parameter(self, name: str) -> ParameterSpec | None:
        return next((p for p in self.parameters if p.name == name), None)


@dataclass(frozen=True, slots=True)
class LoadReport:
    """A worker's load as of its last heartbeat (the shape of gRPC's ORCA load reports)."""

    free_slots: int = -1  # -1: unlimited
    queued: int = 0
    cpu_utilization: float = 0.0  # in cores
    mem_utilization: float = 0.0  # fraction of the machine's memory
    utilization: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker as the registry knows it."""

    worker_id: str
    name: str
    address: str
    version: str = ""
    tags: tuple[str, ...] = ()
    capabilities: tuple[CapabilitySpec, ...] = ()
    last_heartbeat: datetime | None = None
    current_load: int = 0
    max_concurrent_tasks: int = 0  # 0: no limit
    load_report: LoadReport | None = None
    state: WorkerState = WorkerState.ACTIVE
    state_reason: str = ""  # why it is SUSPECT or EVICTED, e.g. "no heartbeat for 1.4s"
    # Derived once, for the scheduler's hot path: capabilities by name, tags lower-cased.
    _by_name: dict[str, CapabilitySpec] = field(init=False, repr=False, compare=False, hash=False)
    tag_set: frozenset[str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.capabilities})
        object.__setattr__(self, "tag_set", frozenset(t.lower() for t in self.tags))

    def offers(self, capability: str) -> bool:
        return capability in self._by_name

    def capability(self, name: str) -> CapabilitySpec | None:
        return self._by_name.get(name)


class FailureOrigin(enum.IntEnum):
    """Where a failure came from; mirrors the contract's FailureOrigin member for member."""

    UNSPECIFIED = 0
    HANDLER = 1  # the capability's handler raised (or returned an output that cannot be sent)
    TIMEOUT = 2  # a deadline passed: the execution timeout, or the wait in the queue
    INFRASTRUCTURE = 3  # the worker died, became unreachable, lost the task or gave it up
    CANCELED = 4  # someone canceled the task
    REJECTED = 5  # the worker refused the task as invalid for it


MAX_TRACEBACK = 8 * 1024  # characters of a traceback a TaskFailure carries: the end, where the error was raised


def traceback_tail(text: str) -> str:
    """`text` cut to its last `MAX_TRACEBACK` characters, marked where it was cut."""
    if len(text) <= MAX_TRACEBACK:
        return text
    kept = MAX_TRACEBACK - 64  # room for the mark
    return f"… ({len(text) - kept} characters before these left out)\n" + text[-kept:]


@quick_init  # made once or more per task on every process's path
@dataclass(frozen=True, slots=True)
class TaskFailure:
    """Why a task (or one attempt of it) failed or was canceled, for programs.

    `type` names the error ("ValueError", "DeadlineExceeded", "WorkerLost", ...), `message` is its own
    message, `retryable` False means trying again cannot help, `origin` says who or what ended it.
    """

    type: str
    message: str = ""
    origin: FailureOrigin = FailureOrigin.HANDLER
    retryable: bool = True
    traceback: str = ""  # the handler's traceback when it raised (its last MAX_TRACEBACK characters)

    @property
    def text(self) -> str:
        """The failure as one line, "Type: message" (what `TaskUpdate.error_message` carries)."""
        return f"{self.type}: {self.message}" if self.type and self.message else self.type or self.message


@quick_init  # made once or more per task on every process's path
@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """One state of a task, as streamed by its worker."""

    task_id: str
    status: TaskStatus
    sequence: int = 0
    output_json: str = ""
    error_message: str = ""
    progress: float = 0.0
    progress_message: str = ""
    worker_id: str = ""
    attempt: int = 0  # which dispatch of the task produced it (0: not numbered, e.g. a seed worker)
    timestamp_ns: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    failure: TaskFailure | None = None  # set on FAILED and CANCELED updates
    chunk: OutputChunk | None = None  # a piece of streamed output (RUNNING updates only)
    input_request: InputRequest | None = None  # the handler's question (INPUT_REQUIRED updates)
    input_answer: InputAnswer | None = None  # the answer it was given (the RUNNING update after one)
    approval: Approval | None = None  # the decision that ended an APPROVAL_REQUIRED wait

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def timestamp(self) -> datetime | None:
        """When the worker produced the update (UTC), if it said."""
        # Kept as integer nanoseconds on the hot path; the datetime is made only when asked for.
        return datetime.fromtimestamp(self.timestamp_ns / 1e9, UTC) if self.timestamp_ns else None

    @property
    def output(self) -> Any:
        """The output decoded from JSON (None when there is none)."""
        return json.loads(self.output_json) if self.output_json else None


@quick_init  # made once or more per task on every process's path
@dataclass(frozen=True, slots=True)
class Attempt:
    """One dispatch of a task to a worker, as the orchestrator saw it."""

    number: int
    worker_id: str
    started_at: datetime
    ended_at: datetime | None = None
    status: TaskStatus = TaskStatus.RUNNING
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A task that failed for good after retryable failures, kept with its whole history."""

    task_id: str
    capability: str
    params: dict[str, Any]
    attempts: tuple[Attempt, ...]
    error_message: str
    options: TaskOptions = field(default_factory=TaskOptions, repr=False)  # to submit it again as it was
    owner: str = ""  # the principal that submitted it (a requeued letter is still theirs)


@quick_init  # made once or more per task on every process's path
@dataclass(frozen=True, slots=True)
class TaskRecord:
    """What an orchestrator knows of one task, finished or not: where it stands, every attempt, its outcome."""

    task_id: str
    capability: str
    status: TaskStatus
    params: dict[str, Any] = field(default_factory=dict)
    attempts: tuple[Attempt, ...] = ()
    last_update: TaskUpdate | None = None  # the final update once the task finished
    submitted_at: datetime | None = None
    dead_lettered: bool = False  # it is (or was) in the dead-letter queue
    cancel_reason: str = ""  # set once a cancel was asked for
    idempotency_key: str = ""
    owner: str = ""  # the principal that submitted it (empty: the orchestrator checked no credentials)
    not_before: datetime | None = None  # a delayed task's start, at the earliest
    expires_at: datetime | None = None  # when a finished task is dropped (None: kept for good)
    inputs: tuple[InputExchange, ...] = ()  # the handler's questions and their answers, in order
    approval: Approval | None = None  # the approval decision, once made
    approval_required: bool = False  # the task had to be approved before it ran
    claimed_by: str = ""  # who holds its pending question (a human worker's inbox: `claim`)

    @property
    def input_request(self) -> InputRequest | None:
        """The question the task waits on now (None: it waits for no input)."""
        if self.status is TaskStatus.INPUT_REQUIRED and self.inputs and self.inputs[-1].answer is None:
            return self.inputs[-1].request
        return None

    @property
    def output(self) -> Any:
        """The decoded output of a COMPLETED task (None otherwise)."""
        if self.status is not TaskStatus.COMPLETED or self.last_update is None:
            return None
        return self.last_update.output

    @property
    def error_message(self) -> str:
        return self.last_update.error_message if self.last_update is not None else ""


@dataclass(frozen=True, slots=True)
class LimitedQueue:
    """Waiting tasks of a capability held back by its rate or concurrency limit (see `core.gates`)."""

    capability: str
    waiting: int
    starts_in_seconds: float | None  # None: when one of its tasks in flight ends
    limit: str


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """A worker as one orchestrator sees it: its standing, its circuit breaker, that orchestrator's tasks on it."""

    worker: WorkerInfo
    state: WorkerState  # SUSPECT when the registry or this orchestrator suspects it
    state_reason: str = ""
    circuit: str = "closed"  # "closed", "open" or "half-open"
    in_flight: int = 0


@quick_init  # made once or more per task on every process's path
@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A submitted task as the engine carries it: id, capability, arguments (decoded and as JSON), options."""

    task_id: str
    capability: str
    params: Mapping[str, Any]
    encoded_params: tuple[tuple[str, str], ...]  # (name, JSON) pairs: encoded once, sent as they are
    options: TaskOptions
    created_at_ns: int  # wall clock, nanoseconds since the epoch
    owner: str = ""  # the principal that submitted it (set by the daemon from its credentials)
    # W3C trace context of the span the task continues (("traceparent", ...), ...); () when nobody traces.
    trace_context: tuple[tuple[str, str], ...] = ()

    @property
    def created_at(self) -> datetime:
        # (exact: a float of the nanoseconds would round the last instants of a year up into the next)
        seconds, nanos = divmod(self.created_at_ns, 1_000_000_000)
        return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanos // 1000)


MAX_PAGE = 1000  # the most records one page may hold


class TaskQueryFields(TypedDict, total=False):
    """The filters of `tasks()` / `task_page()`, as keyword arguments."""

    status: TaskStatus | Iterable[TaskStatus] | None  # one status or several (default: any)
    capability: str | None  # default: any
    worker_id: str | None  # the worker its latest attempt went to (default: any)
    since: datetime | None  # submitted at or after this instant (default: no bound)
    until: datetime | None  # submitted before this instant (default: no bound)
    task_id_prefix: str | None  # its id starts with this (a whole id finds that one task; default: any)
    limit: int  # records per page, 1..1000 (default 100)
    offset: int  # records skipped, newest first (default 0)


MAX_FILTER_LENGTH = 256  # characters of a worker id or task id prefix a query may name (the ids' own bound)


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """Which task records to list, and which page of them, most recently submitted first.

    A record matches when it passes every filter given: one of `statuses` (empty: any), `capability`
    (empty: any), `worker_id` (the worker of its latest attempt; empty: any), submitted in [`since`, `until`)
    (None: no bound), an id starting with `task_id_prefix` (empty: any), and `owner` (None: anyone's).
    `matches` says so for one record; every task home filters with it, or with its own index to the same
    effect.
    """

    statuses: tuple[TaskStatus, ...] = ()
    capability: str = ""
    limit: int = 100
    offset: int = 0
    owner: str | None = None  # only the tasks this principal submitted (None: anyone's)
    worker_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    task_id_prefix: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.limit <= MAX_PAGE:
            problems.append(f"limit must be 1..{MAX_PAGE}, got {self.limit}")
        if self.offset < 0:
            problems.append(f"offset must be >= 0, got {self.offset}")
        for name in ("capability", "worker_id", "task_id_prefix"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > MAX_FILTER_LENGTH:
                problems.append(f"{name} must be a text of at most {MAX_FILTER_LENGTH} characters")
        bounds = {"since": self.since, "until": self.until}
        for name, bound in bounds.items():
            if bound is not None and not isinstance(bound, datetime):
                problems.append(f"{name} must be a datetime or None, got {type(bound).__name__}")
        since, until = self.since, self.until
        if isinstance(since, datetime) and isinstance(until, datetime) and _epoch(since) > _epoch(until):
            problems.append(f"since ({since.isoformat()}) is after until ({until.isoformat()})")
        if problems:
            raise InvalidParametersError(problems)

    @classmethod
    def of(cls, **filters: Any) -> TaskQuery:
        """A query from the keyword filters of `tasks()` (see `TaskQueryFields`)."""
        status = filters.pop("status", None)
        statuses = (status,) if isinstance(status, TaskStatus) else tuple(status or ())
        texts: dict[str, Any] = {
            name: filters.pop(name, None) or "" for name in ("capability", "worker_id", "task_id_prefix")
        }
        return cls(statuses=statuses, **texts, **filters)

    @property
    def since_seconds(self) -> float | None:
        """`since` in seconds since the epoch (None: no bound)."""
        return None if self.since is None else _epoch(self.since)

    @property
    def until_seconds(self) -> float | None:
        """`until` in seconds since the epoch (None: no bound)."""
        return None if self.until is None else _epoch(self.until)

    def matches(self, record: TaskRecord) -> bool:
        """Whether `record` passes every filter (the page, `limit` and `offset`, is not a filter)."""
        if self.statuses and record.status not in self.statuses:
            return False
        if self.capability and record.capability != self.capability:
            return False
        if self.owner is not None and record.owner != self.owner:
            return False
        if self.task_id_prefix and not record.task_id.startswith(self.task_id_prefix):
            return False
        if self.worker_id and latest_worker(record) != self.worker_id:
            return False
        if self.since is not None or self.until is not None:
            submitted = _epoch(record.submitted_at) if record.submitted_at is not None else 0.0
            since, until = self.since_seconds, self.until_seconds
            if (since is not None and submitted < since) or (until is not None and submitted >= until):
                return False
        return True


def latest_worker(record: TaskRecord) -> str:
    """The worker a task's latest attempt went to (empty: it was never sent to one)."""
    if record.attempts:
        return record.attempts[-1].worker_id
    return record.last_update.worker_id if record.last_update is not None else ""


def _epoch(when: datetime) -> float:
    # A naive datetime is read as UTC (as the wire's timestamps are), not as the machine's local time.
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()
