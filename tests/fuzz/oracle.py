"""What every fuzz case is checked against (bounds on answers, the inputs that must be refused), and where the
failures are collected (all of them, deduplicated)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import Message

from tests.fuzz.rpcs import Rpc
from worker_abstraction._proto import worker_pb2 as pb

MAX_DETAILS_CHARS = 1000
MAX_METADATA_CHARS = 2000
MAX_TEXT_FIELD_CHARS = 1000
# Bytes a single call may add to a server's log (stderr): more is a log flood (usually an echoed input).
MAX_LOG_BYTES_PER_CALL = 16 * 1024
# Growth of a server's resident memory over one test module (fuzzed registrations are evicted by the TTL).
MAX_RSS_GROWTH_BYTES = 300 * 2**20
# Response fields that carry human-readable text about a failure: they must stay short too.
TEXT_FIELDS = {"message", "details", "error_message", "reason", "state_reason", "fields_json"}


@dataclass
class Finding:
    rpc: str
    kind: str
    outcome: str
    shape: str
    repro: str
    count: int = 1

    def key(self) -> tuple[str, str, str, str]:
        return (self.rpc, self.kind, self.outcome, self.shape)

    def render(self) -> str:
        return f"[{self.rpc}] {self.kind}: {self.outcome} <- {self.shape} (x{self.count})\n    repro: {self.repro}"


@dataclass
class Findings:
    """Failures of many cases, one entry per (rpc, kind, outcome, shape)."""

    items: dict[tuple[str, str, str, str], Finding] = field(default_factory=dict)
    cases: int = 0

    def add(self, finding: Finding) -> None:
        known = self.items.get(finding.key())
        if known is None:
            self.items[finding.key()] = finding
        else:
            known.count += 1

    def for_rpc(self, rpc: str) -> list[Finding]:
        return [f for f in self.items.values() if f.rpc == rpc]

    def seen(self, rpc: str, kind: str, shape: str) -> bool:
        return any(f.rpc == rpc and f.kind == kind and f.shape == shape for f in self.items.values())

    def report(self, only: Iterable[Finding] | None = None) -> str:
        chosen = sorted(self.items.values() if only is None else only, key=lambda f: (f.rpc, f.kind, f.shape))
        return "\n".join(f.render() for f in chosen)


def text_too_long(response: Message) -> list[str]:
    """Names of human-readable text fields in `response` (at any depth) longer than the bound."""
    long: list[str] = []
    for descriptor, value in response.ListFields():
        if descriptor.type == descriptor.TYPE_MESSAGE:
            children = value if descriptor.is_repeated else [value]
            if descriptor.message_type.GetOptions().map_entry:
                continue
            for child in list(children)[:50]:
                long += [f"{descriptor.name}.{name}" for name in text_too_long(child)]
        elif descriptor.name in TEXT_FIELDS and isinstance(value, str) and len(value) > MAX_TEXT_FIELD_CHARS:
            long.append(f"{descriptor.name}({len(value):,} chars)")
    return long


def status_outcome(code: grpc.StatusCode | None, details: str | None) -> str:
    name = "OK" if code is None else code.name
    if details:
        head = details[:120].replace("\n", " ")
        return f"{name} {head!r}{'...' if len(details) > 120 else ''}"
    return name


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


# ---- the inputs treated as obviously invalid: answered OK (or accepted) they are a finding ----------------

KNOWN_CAPABILITIES = ("echo", "add", "nap")  # what the fuzz cluster's worker offers (_fuzz_workers.py)


def _json_ok(text: str) -> bool:
    """Strict JSON (no NaN/Infinity), parseable by Python at all."""

    def reject(token: str) -> float:
        raise ValueError(token)

    try:
        value = json.loads(text, parse_constant=reject)
    except (ValueError, RecursionError):
        return False
    return not _lone_surrogate(value)


def _lone_surrogate(value: object) -> bool:
    """Whether a decoded JSON value holds a surrogate code point (a lone one: pairs decode to one character)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in item):
            return True
        if isinstance(item, dict):
            stack += [*item, *item.values()]
        elif isinstance(item, list):
            stack += item
    return False


def _stamp_problem(message: Message, name: str, *, since_1970: bool = False) -> str | None:
    if name not in message.DESCRIPTOR.fields_by_name or not message.HasField(name):
        return None
    stamp = getattr(message, name)
    lowest = 0 if since_1970 else -62_135_596_800
    if not (lowest <= stamp.seconds <= 253_402_300_799 and 0 <= stamp.nanos <= 999_999_999):
        return f"invalid Timestamp {name}"
    return None


def _bad_double(value: float, *, negative_ok: bool = False) -> bool:
    return value != value or value in (float("inf"), float("-inf")) or (value < 0 and not negative_ok)


def task_problem(task: pb.Task, *, known_capability: bool = True) -> str | None:
    """Why a task must be refused (by a worker or the daemon), or None."""
    if not task.capability_name:
        return "empty capability_name"
    if known_capability and task.capability_name not in KNOWN_CAPABILITIES:
        return "unknown capability"
    if task.timeout_seconds < 0:
        return "negative timeout_seconds"
    if task.attempt < 0:
        return "negative attempt"
    if (stamp := _stamp_problem(task, "created_at", since_1970=True)) is not None:
        return stamp
    keys = [p.key for p in task.parameters]
    if len(keys) != len(set(keys)):
        return "duplicate parameter keys"
    for p in task.parameters:
        if not _json_ok(p.value_json):
            return f"parameter {p.key[:20]!r} value_json is not JSON"
    known = {"echo": {"text", "times"}, "add": {"a", "b"}, "nap": {"seconds"}}.get(task.capability_name)
    if known is not None and not set(keys) <= known:
        return "unknown parameter"
    if task.capability_name == "echo" and "text" not in keys:
        return "missing required parameter"
    return None


def submit_problem(request: pb.SubmitTaskRequest) -> str | None:
    if not request.HasField("task"):
        return "no task"
    problem = task_problem(request.task)
    if problem:
        return problem
    for name in ("queue_timeout_seconds", "exact_timeout_seconds"):
        if request.HasField(name) and _bad_double(getattr(request, name)):
            return f"{name} NaN/inf/negative"
    if request.HasField("retry_policy"):
        policy = request.retry_policy
        if policy.max_attempts < 0:
            return "negative retry max_attempts"
        for name in ("initial_backoff_seconds", "backoff_multiplier", "max_backoff_seconds", "jitter"):
            if _bad_double(getattr(policy, name)):
                return f"retry {name} NaN/inf/negative"
    return None


def register_problem(request: pb.RegisterWorkerRequest) -> str | None:
    if not request.HasField("worker_info"):
        return "no worker_info"
    info = request.worker_info
    if not info.address.strip():
        return "empty address"
    port = info.address.rpartition(":")[2]
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return "port not ASCII digits in 1..65535"
    if (stamp := _stamp_problem(info, "last_heartbeat")) is not None:
        return stamp
    if info.max_concurrent_tasks < 0:
        return "negative max_concurrent_tasks"
    names = [c.name for c in info.capabilities]
    if len(names) != len(set(names)):
        return "duplicate capability names"
    for cap in info.capabilities:
        if not cap.name.strip():
            return "empty capability name"
        if cap.max_concurrent_tasks < 0:
            return "negative capability max_concurrent_tasks"
        params = [p.name for p in cap.parameters]
        if len(params) != len(set(params)):
            return "duplicate parameter names"
        for param in cap.parameters:
            if param.json_schema and not _json_ok(param.json_schema):
                return "json_schema is not JSON"
            if param.json_schema and not isinstance(json.loads(param.json_schema), dict | bool):
                return "json_schema is not a schema"
    return None


def list_tasks_problem(request: pb.ListTasksRequest) -> str | None:
    if request.limit < 0:
        return "negative limit"
    token = request.page_token
    if token and not (token.isascii() and token.isdigit()):
        return "page_token not ASCII digits"
    for name in ("since", "until"):
        if (stamp := _stamp_problem(request, name, since_1970=True)) is not None:
            return stamp
    if any(s not in pb.TaskStatus.values() for s in request.statuses):
        return "unknown status enum"
    return None


def must_refuse(rpc: Rpc, message: Message) -> str | None:
    """The inputs treated as obviously invalid: answered OK (or accepted/success) they are a finding."""
    name = rpc.name
    if name == "RegistryService/RegisterWorker":
        return register_problem(message)  # type: ignore[arg-type]
    if name in ("WorkerService/ExecuteTask",):
        request = message
        if not request.HasField("task"):  # type: ignore[attr-defined]
            return "no task"
        return task_problem(request.task)  # type: ignore[attr-defined]
    if name == "OrchestratorService/SubmitTask":
        return submit_problem(message)  # type: ignore[arg-type]
    if name == "OrchestratorService/ListTasks":
        return list_tasks_problem(message)  # type: ignore[arg-type]
    if name in (
        "OrchestratorService/GetTask",
        "OrchestratorService/RequeueDeadLetter",
        "RegistryService/GetWorkerById",
    ):
        ident = message.task_id if hasattr(message, "task_id") else message.worker_id  # type: ignore[attr-defined]
        return "empty id" if not ident else None
    return None
