"""Hypothesis strategies: raw bytes, structurally valid but hostile messages, and messages filled with random
values, for every request type.

A case is a `Case`: the request messages (one, or a few for a client stream), a label naming the hostile
shapes it carries (what a finding reports), and why it must be refused, if it must (see `oracle.must_refuse`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from tests.fuzz.rpcs import Rpc
from worker_abstraction._proto import worker_pb2 as pb

MB = 2**20
DEEP = 10_000


@dataclass
class Case:
    messages: list[bytes]
    label: str
    must_refuse: str | None = None
    built: list[Message] | None = None


# ---- hostile values, each with a short label --------------------------------------------------------------

HOSTILE_STRINGS: list[tuple[str, str]] = [
    ("empty", ""),
    ("1MB string", "a" * MB),
    ("100k unicode", "é🙂" * 50_000),
    ("control chars", "\x00\x01\x1b[31m\r\n\x7f"),
    ("bidi/zero-width", "\u202eevil\u200b\ufeff"),
    ("path traversal", "../../../../etc/passwd"),
    ("format string", "%s%s%n{0}{}${jndi:x}"),
    ("whitespace", "   \t "),
]
HOSTILE_JSON: list[tuple[str, str]] = [
    ("10,000-deep JSON list", "[" * DEEP + "]" * DEEP),
    ("10,000-deep JSON object", '{"a":' * DEEP + "1" + "}" * DEEP),
    ("5,000-digit integer JSON", "9" * 5000),
    ("JSON NaN", "NaN"),
    ("JSON Infinity", "-Infinity"),
    ("JSON 1e400", "1e400"),
    ("truncated JSON '{'", "{"),
    ("empty JSON text", ""),
    ("lone surrogate JSON", '"\\ud800"'),
    ("lone low surrogate inside a JSON string", '"a\\udfffb"'),
    ("lone surrogate JSON object key", '{"\\udc00": 1}'),
    ("lone surrogate nested in JSON", '["ok", {"k": ["\\ud83d"]}]'),
    ("duplicate-key JSON", '{"a":1,"a":2}'),
    ("1MB JSON string", json.dumps("x" * MB)),
]
HOSTILE_SCHEMAS: list[tuple[str, str]] = [
    ("schema '{'", "{"),
    ("schema catastrophic regex ^(a+)+$", '{"type":"string","pattern":"^(a+)+$"}'),
    ("schema invalid regex", '{"type":"string","pattern":"(("}'),
    ("schema self $ref", '{"$ref":"#"}'),
    ("schema remote $ref", '{"$ref":"http://169.254.169.254/latest"}'),
    ("schema unknown type", '{"type":"nonsense"}'),
    ("schema not an object", "[1,2]"),
    ("schema 10,000-deep", '{"items":' * DEEP + "{}" + "}" * DEEP),
    ("schema minimum 5,000 digits", '{"type":"integer","minimum":' + "9" * 5000 + "}"),
    ("schema lone surrogate", '{"type":"string","enum":["\\ud800"]}'),
    ("schema NaN", '{"type":"number","minimum":NaN}'),
]
# Numbers written in text (page tokens, ports): digits of other scripts, signs, spaces, too many digits.
HOSTILE_DIGITS: list[tuple[str, str]] = [
    ("arabic-indic digits", "١٢"),
    ("fullwidth digits", "１２"),
    ("devanagari digit", "५"),
    ("superscript digit", "²"),
    ("signed number", "+12"),
    ("spaced number", " 12 "),
    ("underscored number", "1_000"),
    ("10-digit number", "9" * 10),
]
# The boundary integers, each used on every integer field whose wire type can hold it.
BOUNDARY_INTS = [0, -1, 1, 2**31 - 1, -(2**31), 2**31, 2**32, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1]
_INT_TYPES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
DOUBLES = [
    ("NaN", float("nan")),
    ("inf", float("inf")),
    ("-inf", float("-inf")),
    ("negative", -1.0),
    ("-0.0", -0.0),
    ("1e308", 1e308),
    ("denormal", 5e-324),
]
# google.protobuf.Timestamp values no valid Timestamp holds (and the two ends of the valid range).
TIMESTAMPS: list[tuple[str, tuple[int, int]]] = [
    ("Timestamp nanos -1", (0, -1)),
    ("Timestamp nanos 1e9", (0, 10**9)),
    ("Timestamp nanos int32 max", (1, 2**31 - 1)),
    ("Timestamp seconds past 9999", (253_402_300_800, 0)),
    ("Timestamp seconds 2**62", (2**62, 0)),
    ("Timestamp seconds before year 1", (-62_135_596_801, 0)),
    ("Timestamp seconds int64 min", (-(2**63), 0)),
    ("Timestamp last valid instant", (253_402_300_799, 999_999_999)),
    ("Timestamp before 1970", (-1, 0)),
]
ENUMS = [("unknown enum 99", 99), ("unknown enum -1", -1), ("unknown enum int32 max", 2**31 - 1)]


def _labelled(pool: list[tuple[str, object]]) -> st.SearchStrategy[tuple[str, object]]:
    return st.sampled_from(pool)


random_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40).map(lambda s: ("random text", s))


def string_values(field: FieldDescriptor) -> st.SearchStrategy[tuple[str, object]]:
    pools = [_labelled(HOSTILE_STRINGS), random_text]  # type: ignore[arg-type]
    if field.name == "json_schema":
        pools.insert(0, _labelled(HOSTILE_SCHEMAS))  # type: ignore[arg-type]
    elif field.name.endswith("_json"):
        pools.insert(0, _labelled(HOSTILE_JSON))  # type: ignore[arg-type]
    elif field.name.endswith("_token"):
        pools.insert(0, _labelled(HOSTILE_DIGITS))  # type: ignore[arg-type]
    elif field.name == "address":
        pools.insert(0, _labelled([(f"port in {label}", f"127.0.0.1:{text}") for label, text in HOSTILE_DIGITS]))  # type: ignore[arg-type]
    return st.one_of(*pools)


def int_values(field: FieldDescriptor) -> st.SearchStrategy[tuple[str, object]]:
    """Every boundary integer the field's wire type can hold, and now and then any other it can."""
    lo, hi = _INT_TYPES[field.type]
    boundaries = [(f"int {value}", value) for value in BOUNDARY_INTS if lo <= value <= hi]
    return st.one_of(_labelled(boundaries), st.integers(lo, hi).map(lambda v: ("random int", v)))  # type: ignore[arg-type]


def scalar_values(field: FieldDescriptor) -> st.SearchStrategy[tuple[str, object]]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return string_values(field)
    if t in _INT_TYPES:
        return int_values(field)
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _labelled(DOUBLES)  # type: ignore[arg-type]
    if t == FieldDescriptor.TYPE_ENUM:
        return _labelled(ENUMS)  # type: ignore[arg-type]
    if t == FieldDescriptor.TYPE_BOOL:
        return st.sampled_from([("true", True), ("false", False)])
    return st.just(("bytes", b"\x00" * 10))


# ---- mutations over a message's field tree ----------------------------------------------------------------

Path = tuple[FieldDescriptor, ...]


def field_paths(descriptor: object, depth: int = 4) -> list[Path]:
    paths: list[Path] = []
    for field in descriptor.fields:  # type: ignore[attr-defined]
        paths.append((field,))
        if field.type == FieldDescriptor.TYPE_MESSAGE and depth > 1 and not field.message_type.GetOptions().map_entry:
            paths += [(field, *rest) for rest in field_paths(field.message_type, depth - 1)]
    return paths


def _descend(message: Message, field: FieldDescriptor) -> Message:
    if field.is_repeated:
        items = getattr(message, field.name)
        return items[0] if len(items) else items.add()
    return getattr(message, field.name)  # type: ignore[no-any-return]


@st.composite
def mutation(draw: st.DrawFn, descriptor: object) -> Callable[[Message], str]:
    path = draw(st.sampled_from(field_paths(descriptor)))
    last = path[-1]
    dotted = ".".join(f.name for f in path)
    if last.type == FieldDescriptor.TYPE_MESSAGE and last.message_type.full_name == "google.protobuf.Timestamp":
        stamp_label, (seconds, nanos) = draw(st.sampled_from(TIMESTAMPS))

        def stamp(message: Message) -> str:
            target = message
            for field in path[:-1]:
                target = _descend(target, field)
            value = _descend(target, last)
            value.seconds, value.nanos = seconds, nanos  # type: ignore[attr-defined]
            return f"{dotted}={stamp_label}"

        return stamp
    if last.type == FieldDescriptor.TYPE_MESSAGE:
        if last.message_type.GetOptions().map_entry:
            key_label, key = draw(string_values(last.message_type.fields_by_name["key"]))
            value_field = last.message_type.fields_by_name["value"]
            value_label, value = draw(scalar_values(value_field))
            many = draw(st.sampled_from([1, 2000]))
            if many > 1 and len(str(key)) + len(str(value)) > 4096:
                many = 16  # 2,000 entries of a megabyte would be gigabytes: past any limit, and past RAM

            def put(message: Message) -> str:
                target = message
                for field in path[:-1]:
                    target = _descend(target, field)
                entries = getattr(target, last.name)
                for i in range(many):
                    entries[f"{key}{i}" if many > 1 else key] = value
                return f"{dotted}[{key_label}]={value_label}" + (f" x{many}" if many > 1 else "")

            return put
        action = draw(st.sampled_from(["clear", "repeat-1000"] if last.is_repeated else ["clear"]))

        def structural(message: Message) -> str:
            target = message
            for field in path[:-1]:
                target = _descend(target, field)
            if action == "clear":
                target.ClearField(last.name)
                return f"{dotted} unset"
            items = getattr(target, last.name)
            template = items[0] if len(items) else None
            # A thousand copies of a megabyte would be a gigabyte: past any limit, and past RAM.
            count = 1000 if template is None or template.ByteSize() < 2**16 else 16
            for _ in range(count):
                added = items.add()
                if template is not None:
                    added.CopyFrom(template)
            return f"{dotted} x{count} (duplicates)"

        return structural
    label, value = draw(scalar_values(last))

    def set_value(message: Message) -> str:
        target = message
        for field in path[:-1]:
            target = _descend(target, field)
        if last.is_repeated:
            items = getattr(target, last.name)
            del items[:]
            items.extend([value] * (1 if len(str(value)) > 1000 else 3))
        else:
            setattr(target, last.name, value)
        return f"{dotted}={label}"

    return set_value


UNKNOWN_FIELD_TAILS: list[tuple[str, bytes]] = [
    ("unknown field 999 varint", b"\xb8\x3e\x01"),
    ("unknown field 5 length-delimited 1MB", b"\x2a\x80\x80\x40" + b"z" * MB),
    ("unknown group field", b"\x0b\x08\x01\x0c"),
]


@st.composite
def hostile_message(draw: st.DrawFn, rpc: Rpc, baseline: Callable[[], Message]) -> tuple[Message, str, bytes]:
    message = baseline()
    labels: list[str] = []
    if rpc.request_type.DESCRIPTOR.fields:
        for _ in range(draw(st.integers(1, 3))):
            labels.append(draw(mutation(rpc.request_type.DESCRIPTOR))(message))
    tail = b""
    if not rpc.request_type.DESCRIPTOR.fields or draw(st.integers(0, 9)) == 0:
        tail_label, tail = draw(st.sampled_from(UNKNOWN_FIELD_TAILS))
        labels.append(tail_label)
    return message, "; ".join(labels), tail


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _nested(depth: int) -> bytes:
    inner = b""
    for _ in range(depth):
        inner = b"\x0a" + _varint(len(inner)) + inner
    return inner


RAW_SPECIALS: list[tuple[str, bytes]] = [
    ("raw: truncated varint", b"\x08\xff\xff\xff"),
    ("raw: length prefix 2 GiB", b"\x0a\xff\xff\xff\xff\x07"),
    ("raw: wrong wire type for field 1", b"\x0d\x00\x00\x00\x00"),
    ("raw: field number 0", b"\x00\x01"),
    ("raw: 200-deep nested field 1", _nested(200)),
    ("raw: invalid UTF-8 in field 1", b"\x0a\x02\xff\xfe"),
    ("raw: UTF-8-encoded surrogate in field 1", b"\x0a\x03\xed\xa0\x80"),
    ("raw: varint 2**64-1 in field 2", b"\x10" + b"\xff" * 9 + b"\x01"),
    ("raw: end-group without start", b"\x0c"),
]


@st.composite
def random_message(draw: st.DrawFn, descriptor: Descriptor, depth: int = 3) -> Message:
    """A message of `descriptor`'s type with random values in random fields (nested ones too), as a client
    that fills a request from random bytes sends it: structurally valid, meaning nothing."""
    message = message_factory.GetMessageClass(descriptor)()
    _fill(draw, message, depth)
    return message


def _fill(draw: st.DrawFn, message: Message, depth: int) -> None:
    for field in message.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue
        name = field.name
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            entry = field.message_type
            if entry.GetOptions().map_entry:
                target = getattr(message, name)
                for _ in range(draw(st.integers(1, 3))):
                    key = draw(_random_scalar(entry.fields_by_name["key"]))
                    value_field = entry.fields_by_name["value"]
                    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                        if depth > 0:
                            _fill(draw, target[key], depth - 1)
                    else:
                        target[key] = draw(_random_scalar(value_field))
            elif depth > 0 and field.is_repeated:
                for _ in range(draw(st.integers(1, 2))):
                    _fill(draw, getattr(message, name).add(), depth - 1)
            elif depth > 0:
                child = getattr(message, name)
                child.SetInParent()
                _fill(draw, child, depth - 1)
        elif field.is_repeated:
            getattr(message, name).extend(draw(st.lists(_random_scalar(field), min_size=1, max_size=3)))
        else:
            setattr(message, name, draw(_random_scalar(field)))


def _random_scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t in _INT_TYPES:
        lo, hi = _INT_TYPES[t]
        return st.one_of(st.sampled_from([v for v in BOUNDARY_INTS if lo <= v <= hi]), st.integers(lo, hi))
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=64 if t == FieldDescriptor.TYPE_DOUBLE else 32)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        return st.integers(-2, 10)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=20)
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


def raw_bytes() -> st.SearchStrategy[tuple[str, bytes]]:
    return st.one_of(st.sampled_from(RAW_SPECIALS), st.binary(max_size=256).map(lambda b: ("raw: random bytes", b)))


# ---- valid baselines (what must be refused: oracle.py) --------------------------------------------------


@dataclass
class Known:
    """Ids the baselines draw on: the real worker's, finished tasks', fuzz-registered workers'."""

    worker_id: str = ""
    task_ids: tuple[str, ...] = ()


ECHO_SCHEDULE = '{"name": "fz-schedule", "capability": "echo", "params": {"text": "hi"}, "every_seconds": 3600}'
ECHO_FLOW = '{"workflow": "fz", "steps": [{"name": "say", "capability": "echo", "params": {"text": "hi"}}]}'


def _task(capability: str = "echo") -> pb.Task:
    task = pb.Task(task_id=f"fz-{uuid.uuid4().hex[:12]}", capability_name=capability, timeout_seconds=5)
    task.parameters.add(key="text", value_json='"hi"')
    return task


def baselines(known: Known) -> dict[str, Callable[[], Message]]:
    task_id = known.task_ids[0] if known.task_ids else "no-such-task"

    def register() -> Message:
        info = pb.WorkerInfo(worker_id="fz-reg", name="fz", version="1", address="127.0.0.1:9")
        cap = info.capabilities.add(name="fz_cap", description="fuzz")
        cap.parameters.add(name="x", type="string", required=True, json_schema='{"type":"string"}')
        return pb.RegisterWorkerRequest(worker_info=info)

    def submit() -> Message:
        return pb.SubmitTaskRequest(task=_task(), queue_timeout_seconds=5.0)

    return {
        "RegistryService/RegisterWorker": register,
        "RegistryService/WorkerHeartbeat": lambda: pb.HeartbeatRequest(worker_id="fz-reg", current_load=1),
        "RegistryService/GetAvailableWorkers": pb.google_dot_protobuf_dot_empty__pb2.Empty,
        "RegistryService/GetWorkerById": lambda: pb.GetWorkerByIdRequest(worker_id=known.worker_id),
        "RegistryService/DeregisterWorker": lambda: pb.DeregisterWorkerRequest(worker_id="fz-reg"),
        "RegistryService/WatchWorkers": pb.WatchWorkersRequest,
        "RegistryService/HeartbeatStream": lambda: pb.HeartbeatRequest(worker_id="fz-reg", current_load=1),
        "WorkerService/ExecuteTask": lambda: pb.ExecuteTaskRequest(task=_task()),
        "WorkerService/StreamTaskStatus": lambda: pb.GetTaskStatusRequest(task_id=task_id),
        "WorkerService/GetWorkerInfo": pb.google_dot_protobuf_dot_empty__pb2.Empty,
        "WorkerService/OpenTaskChannel": lambda: pb.TaskChannelRequest(tasks=[_task()]),
        "WorkerService/CancelTask": lambda: pb.CancelTaskRequest(task_id=task_id, reason="fuzz"),
        "WorkerService/ProvideInput": lambda: pb.ProvideInputRequest(task_id=task_id, value_json='"fuzz"'),
        "OrchestratorService/SubmitTask": submit,
        "OrchestratorService/WatchTask": lambda: pb.WatchTaskRequest(task_id=task_id),
        "OrchestratorService/GetQueueStats": pb.google_dot_protobuf_dot_empty__pb2.Empty,
        "OrchestratorService/CancelTask": lambda: pb.CancelTaskRequest(task_id=task_id, reason="fuzz"),
        "OrchestratorService/ListDeadLetters": pb.google_dot_protobuf_dot_empty__pb2.Empty,
        "OrchestratorService/RequeueDeadLetter": lambda: pb.DeadLetterRequest(task_id=task_id),
        "OrchestratorService/PurgeDeadLetters": lambda: pb.PurgeDeadLettersRequest(task_ids=["no-such-task"]),
        "OrchestratorService/GetTask": lambda: pb.GetTaskRequest(task_id=task_id),
        "OrchestratorService/ListTasks": lambda: pb.ListTasksRequest(limit=10),
        "OrchestratorService/ListWorkers": pb.google_dot_protobuf_dot_empty__pb2.Empty,
        "OrchestratorService/OpenSession": lambda: pb.SessionRequest(
            submits=[pb.SessionSubmit(request_id=1, submit=submit())]  # type: ignore[arg-type]
        ),
        "OrchestratorService/RunWorkflow": lambda: pb.RunWorkflowRequest(definition_json=ECHO_FLOW),
        # (a task's id: not a workflow's, answered NOT_FOUND like an unknown one)
        "OrchestratorService/GetWorkflow": lambda: pb.GetWorkflowRequest(workflow_id=task_id),
        "OrchestratorService/ListWorkflows": lambda: pb.ListWorkflowsRequest(limit=10),
        "OrchestratorService/WatchWorkflow": lambda: pb.WatchWorkflowRequest(workflow_id=task_id),
        "OrchestratorService/CancelWorkflow": lambda: pb.CancelWorkflowRequest(workflow_id=task_id, reason="fuzz"),
        "OrchestratorService/RerunWorkflow": lambda: pb.RerunWorkflowRequest(workflow_id=task_id, step="say"),
        "OrchestratorService/CreateSchedule": lambda: pb.ScheduleRequest(schedule_json=ECHO_SCHEDULE),
        "OrchestratorService/UpdateSchedule": lambda: pb.ScheduleRequest(schedule_json=ECHO_SCHEDULE),
        "OrchestratorService/GetSchedule": lambda: pb.ScheduleName(name="fz-schedule"),
        "OrchestratorService/ListSchedules": pb.google_dot_protobuf_dot_empty__pb2.Empty,
        "OrchestratorService/PauseSchedule": lambda: pb.ScheduleName(name="fz-schedule"),
        "OrchestratorService/ResumeSchedule": lambda: pb.ResumeScheduleRequest(name="fz-schedule"),
        "OrchestratorService/DeleteSchedule": lambda: pb.ScheduleName(name="fz-schedule"),
        "OrchestratorService/TriggerSchedule": lambda: pb.ScheduleName(name="fz-schedule"),
        "OrchestratorService/ListLimits": pb.google_dot_protobuf_dot_empty__pb2.Empty,
        "OrchestratorService/SetLimits": lambda: pb.Limits(
            rate_limits=[pb.RateLimitSpec(capability="echo", rate="1000/s")],
            concurrency_limits=[pb.ConcurrencyLimitSpec(capability="echo", max_in_flight=1000)],
        ),
        "OrchestratorService/RemoveLimits": lambda: pb.RemoveLimitsRequest(capability="echo"),
        "OrchestratorService/ProvideInput": lambda: pb.ProvideInputRequest(task_id=task_id, value_json='"fuzz"'),
        "OrchestratorService/ApproveTask": lambda: pb.ApprovalRequest(task_id=task_id, reason="fuzz"),
        "OrchestratorService/DenyTask": lambda: pb.ApprovalRequest(task_id=task_id, reason="fuzz"),
        "OrchestratorService/ClaimTask": lambda: pb.ClaimRequest(task_id=task_id, claimant="fuzz"),
        "OrchestratorService/ListVersionSplits": pb.google_dot_protobuf_dot_empty__pb2.Empty,
        "OrchestratorService/SetVersionSplit": lambda: pb.VersionSplit(capability="echo", weights={"^1": 1}),
    }
