"""Every number, enum and Timestamp of every request has a range, and every RPC holds to it.

The first test walks worker.proto's request types: a field that can be out of range and has no rule in
`_convert.bounds.RULES` fails it (so a new field cannot reach a handler unchecked), as does a rule for a field
that no request carries. The second drives the boundary values (0, -1, 2**31-1, 2**31, 2**32, 2**63-1, -2**63,
2**64-1, NaN, the infinities; Timestamps with nanos out of 0..999999999 or seconds past year 9999) into every
such field of every RPC, against a real registry, worker and daemon in this process: a value out of range is
refused (INVALID_ARGUMENT, or in a stream the refusal of that one message), one in range is answered without
INTERNAL or UNKNOWN, and every answer comes within a few seconds.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc import aio

from worker_abstraction import OrchestratorServer, RegistryServer, _convert
from worker_abstraction._convert import bounds
from worker_abstraction._proto import worker_pb2 as pb

pytestmark = pytest.mark.timeout(120)

SERVICES = pb.DESCRIPTOR.services_by_name
INTS = [0, -1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, -(2**63), 2**64 - 1]
REALS = [math.nan, math.inf, -math.inf, -1.0, 0.5, 1e308, 5e-324]
ENUMS = [0, 1, 99, -1, 2**31 - 1]
STAMPS = [(0, -1), (0, 10**9), (2**62, 0), (-(2**62), 0), (253_402_300_799, 999_999_999), (-1, 0), (1, 0)]
_WIRE_RANGE = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}
ANSWER_SECONDS = 5.0
ECHO_FLOW = '{"workflow": "bounds", "steps": [{"name": "say", "capability": "echo", "params": {"text": "hi"}}]}'


def _request_types() -> dict[str, Descriptor]:
    found: dict[str, Descriptor] = {}

    def walk(descriptor: Descriptor) -> None:
        if descriptor.full_name in found:
            return
        found[descriptor.full_name] = descriptor
        for field in descriptor.fields:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                walk(field.message_type)

    for service in SERVICES.values():
        for method in service.methods:
            walk(method.input_type)
    return found


def test_every_number_enum_and_timestamp_of_every_request_has_a_rule() -> None:
    fields = {
        bounds.rule_key(field)
        for descriptor in _request_types().values()
        if not descriptor.GetOptions().map_entry and not descriptor.full_name.startswith("google.protobuf.")
        for field in descriptor.fields
        if bounds.needs_rule(field)
    }
    assert sorted(fields - set(bounds.RULES)) == [], "fields without a rule in _convert/bounds.py RULES"
    assert sorted(set(bounds.RULES) - fields) == [], "rules for fields no request carries"


@pytest.mark.parametrize("stamp", [*STAMPS, (bounds.MAX_TIMESTAMP_SECONDS - 1, 999_999_999)])
def test_every_creation_time_a_submission_may_carry_is_one_the_task_can_be_described_with(
    stamp: tuple[int, int],
) -> None:
    request = pb.SubmitTaskRequest(task=_task())
    request.task.created_at.seconds, request.task.created_at.nanos = stamp
    if bounds.problems(request):
        return  # (refused: nothing to describe)
    spec = _convert.spec_from_pb(request)
    assert spec.created_at.year <= 9999  # (through the float of its nanoseconds: the last instants round up)


# ---- every ruled field of every RPC, at its boundaries ----------------------------------------------------

Path = tuple[FieldDescriptor, ...]


def _paths(descriptor: Descriptor, depth: int = 5) -> Iterator[Path]:
    for field in descriptor.fields:
        if bounds.needs_rule(field):
            yield (field,)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and depth > 1 and not field.message_type.GetOptions().map_entry:
            yield from ((field, *rest) for rest in _paths(field.message_type, depth - 1))


def _values(field: FieldDescriptor) -> list[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        entry = field.message_type
        if entry.GetOptions().map_entry:
            return _values(entry.fields_by_name["value"])
        return STAMPS
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return REALS
    if field.type == FieldDescriptor.TYPE_ENUM:
        return ENUMS
    lo, hi = _WIRE_RANGE[field.type]
    return [value for value in INTS if lo <= value <= hi]


def _allowed(field: FieldDescriptor, value: Any) -> bool:
    rule = bounds.RULES[bounds.rule_key(field)]
    if isinstance(rule, bounds.Instant):
        seconds, nanos = value
        return rule.lo_seconds <= seconds <= rule.hi_seconds and 0 <= nanos <= 999_999_999
    if isinstance(rule, bounds.Known):
        return value in field.enum_type.values_by_number
    return bool(rule.lo <= value <= rule.hi)


def _put(message: Message, path: Path, value: Any) -> None:
    target = message
    for field in path[:-1]:
        if field.is_repeated:
            items = getattr(target, field.name)
            target = items[0] if len(items) else items.add()
        else:
            target = getattr(target, field.name)
    last = path[-1]
    if last.type == FieldDescriptor.TYPE_MESSAGE and last.message_type.GetOptions().map_entry:
        getattr(target, last.name)["metric"] = value
    elif last.type == FieldDescriptor.TYPE_MESSAGE:
        stamp = getattr(target, last.name)
        stamp.seconds, stamp.nanos = value
    elif last.is_repeated:
        getattr(target, last.name)[:] = [value]
    else:
        setattr(target, last.name, value)


@dataclass
class Answer:
    refused: bool  # INVALID_ARGUMENT, or the message's own refusal in a stream
    code: grpc.StatusCode | None  # the call's status (None: OK, or still open when the answer came)
    what: str


@pytest.fixture
async def cluster(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[dict[str, Any]]:
    worker = await start_worker()
    async with OrchestratorServer(registry.address, port=0) as daemon:
        await daemon.orchestrator.wait_for_workers("echo", timeout_seconds=5)
        channels = {
            "RegistryService": aio.insecure_channel(registry.address),
            "WorkerService": aio.insecure_channel(worker.address),
            "OrchestratorService": aio.insecure_channel(daemon.address),
        }
        try:
            yield {"channels": channels, "known": await _finished_tasks(channels)}
        finally:
            for channel in channels.values():
                await channel.close()


def _task(**fields: Any) -> pb.Task:
    task = pb.Task(capability_name="echo", timeout_seconds=5, **fields)
    task.parameters.add(key="text", value_json='"hi"')
    return task


async def _finished_tasks(channels: dict[str, aio.Channel]) -> dict[str, str]:
    """A finished task of the daemon and one of the worker, for the watches to name."""
    daemon, worker = channels["OrchestratorService"], channels["WorkerService"]
    submitted = await _unary(daemon, "OrchestratorService", "SubmitTask", pb.SubmitTaskRequest(task=_task()))
    async with asyncio.timeout(ANSWER_SECONDS):
        async for _ in _stream(
            daemon, "OrchestratorService", "WatchTask", pb.WatchTaskRequest(task_id=submitted.task_id)
        ):
            pass
        executed = pb.Task(task_id="bounds-known", capability_name="echo", timeout_seconds=5)
        executed.parameters.add(key="text", value_json='"hi"')
        await _unary(worker, "WorkerService", "ExecuteTask", pb.ExecuteTaskRequest(task=executed))
        async for _ in _stream(
            worker, "WorkerService", "StreamTaskStatus", pb.GetTaskStatusRequest(task_id="bounds-known")
        ):
            pass
        ran = await _unary(
            daemon, "OrchestratorService", "RunWorkflow", pb.RunWorkflowRequest(definition_json=ECHO_FLOW)
        )
        async for _ in _stream(
            daemon, "OrchestratorService", "WatchWorkflow", pb.WatchWorkflowRequest(workflow_id=ran.workflow_id)
        ):
            pass
    return {"daemon_task": submitted.task_id, "worker_task": "bounds-known", "daemon_workflow": ran.workflow_id}


def _method(service: str, name: str) -> Any:
    return SERVICES[service].methods_by_name[name]


def _response_class(service: str, name: str) -> type[Message]:
    return message_factory.GetMessageClass(_method(service, name).output_type)


async def _unary(channel: aio.Channel, service: str, name: str, request: Message) -> Any:
    call = channel.unary_unary(
        f"/worker_abstraction.{service}/{name}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=_response_class(service, name).FromString,
    )
    return await call(request, timeout=ANSWER_SECONDS)


def _stream(channel: aio.Channel, service: str, name: str, request: Message) -> Any:
    call = channel.unary_stream(
        f"/worker_abstraction.{service}/{name}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=_response_class(service, name).FromString,
    )
    return call(request, timeout=ANSWER_SECONDS)


_numbers = iter(range(1, 10**9))


def _baselines(known: dict[str, str]) -> dict[str, Callable[[Path], Message]]:
    """A valid request of each RPC whose request has a ruled field, for the field at the end of `path`."""

    def register(path: Path) -> Message:
        info = pb.WorkerInfo(worker_id="bounds-reg", name="b", version="1", address="127.0.0.1:9")
        info.capabilities.add(name="bounds_cap", description="never called")
        return pb.RegisterWorkerRequest(worker_info=info)

    def heartbeat(path: Path) -> Message:  # (a worker the registry does not know: only the checks are at stake)
        return pb.HeartbeatRequest(worker_id="bounds-unknown", current_load=0)

    def submit(path: Path) -> pb.SubmitTaskRequest:
        return pb.SubmitTaskRequest(task=_task(), queue_timeout_seconds=5.0)

    def session(path: Path) -> Message:
        if path[0].name == "watches":
            return pb.SessionRequest(watches=[pb.WatchTaskRequest(task_id=known["daemon_task"])])
        return pb.SessionRequest(submits=[pb.SessionSubmit(request_id=7, submit=submit(path))])

    return {
        "RegistryService/RegisterWorker": register,
        "RegistryService/WorkerHeartbeat": heartbeat,
        "RegistryService/HeartbeatStream": heartbeat,
        "WorkerService/ExecuteTask": lambda path: pb.ExecuteTaskRequest(task=_task(task_id=f"b-{next(_numbers)}")),
        "WorkerService/OpenTaskChannel": lambda path: pb.TaskChannelRequest(
            tasks=[_task(task_id=f"b-{next(_numbers)}")]
        ),
        "WorkerService/StreamTaskStatus": lambda path: pb.GetTaskStatusRequest(task_id=known["worker_task"]),
        "WorkerService/ProvideInput": lambda path: pb.ProvideInputRequest(task_id=known["worker_task"], value_json="1"),
        "OrchestratorService/ProvideInput": lambda path: pb.ProvideInputRequest(
            task_id=known["daemon_task"], value_json="1"
        ),
        "OrchestratorService/SubmitTask": submit,
        "OrchestratorService/WatchTask": lambda path: pb.WatchTaskRequest(task_id=known["daemon_task"]),
        "OrchestratorService/ListTasks": lambda path: pb.ListTasksRequest(limit=10),
        "OrchestratorService/OpenSession": session,
        "OrchestratorService/RunWorkflow": lambda path: pb.RunWorkflowRequest(definition_json=ECHO_FLOW),
        "OrchestratorService/ListWorkflows": lambda path: pb.ListWorkflowsRequest(limit=10),
        "OrchestratorService/SetLimits": lambda path: pb.Limits(
            rate_limits=[pb.RateLimitSpec(capability="echo", rate="1000/s")],
            concurrency_limits=[pb.ConcurrencyLimitSpec(capability="echo", max_in_flight=1000)],
        ),
        "OrchestratorService/WatchWorkflow": lambda path: pb.WatchWorkflowRequest(workflow_id=known["daemon_workflow"]),
        "OrchestratorService/SetVersionSplit": lambda path: pb.VersionSplit(capability="echo", weights={"^1": 1}),
    }


def _rpcs_with_ruled_fields() -> list[tuple[str, str]]:
    return [
        (service, method.name)
        for service, descriptor in SERVICES.items()
        for method in descriptor.methods
        if any(True for _ in _paths(method.input_type))
    ]


def test_the_boundary_test_covers_every_rpc_whose_request_has_a_ruled_field() -> None:
    assert {f"{s}/{m}" for s, m in _rpcs_with_ruled_fields()} == set(
        _baselines({"worker_id": "", "worker_task": "", "daemon_task": "", "daemon_workflow": ""})
    )


async def _send(channels: dict[str, aio.Channel], service: str, name: str, request: Message) -> Answer:
    method = _method(service, name)
    channel = channels[service]
    try:
        async with asyncio.timeout(ANSWER_SECONDS):
            if method.client_streaming:
                return await _first_answer(channel, service, name, request)
            if method.server_streaming:  # (its first message, or its status, is the answer)
                call = _stream(channel, service, name, request)
                first = await call.read()
                call.cancel()
                return Answer(False, None, "stream ended OK" if first is aio.EOF else str(first)[:200])
            response = await _unary(channel, service, name, request)
    except aio.AioRpcError as error:
        code = error.code()
        return Answer(code is grpc.StatusCode.INVALID_ARGUMENT, code, f"{code.name}: {error.details()}")
    except TimeoutError:
        return Answer(False, grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer within {ANSWER_SECONDS}s")
    refused = getattr(response, "accepted", True) is False and response.reject_reason == pb.REJECT_REASON_INVALID_TASK
    return Answer(refused, None, str(response)[:200])


async def _first_answer(channel: aio.Channel, service: str, name: str, request: Message) -> Answer:
    """A bidi stream kept open (the caller does not half-close): the request's own answer, or the status."""
    call = channel.stream_stream(
        f"/worker_abstraction.{service}/{name}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=_response_class(service, name).FromString,
    )()
    try:
        await call.write(request)
        while True:
            message = await call.read()
            if message is aio.EOF:
                return Answer(False, None, "stream ended OK")
            if name == "HeartbeatStream":
                return Answer(False, None, str(message)[:200])
            acks = list(message.acks)  # type: ignore[attr-defined]
            if name == "OpenTaskChannel" and acks:
                ack = acks[0]
                return Answer(not ack.accepted and ack.reject_reason == pb.REJECT_REASON_INVALID_TASK, None, str(ack))
            errors = [a.error for a in acks if a.HasField("error")]
            if errors:
                code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
                broken = [e for e in errors if e.code in (13, 2)]  # (INTERNAL, UNKNOWN)
                return Answer(
                    any(e.code == code for e in errors), grpc.StatusCode.INTERNAL if broken else None, str(errors[0])
                )
            if acks or message.updates:  # type: ignore[attr-defined]
                return Answer(False, None, str(message)[:300])
            # (the ready message: no answer yet)
    finally:
        call.cancel()


async def test_every_rpc_refuses_each_out_of_range_value_and_answers_the_others(cluster: dict[str, Any]) -> None:
    channels, baselines = cluster["channels"], _baselines(cluster["known"])
    problems: list[str] = []
    cases = 0
    for service, name in _rpcs_with_ruled_fields():
        for path in _paths(_method(service, name).input_type):
            for value in _values(path[-1]):
                request = baselines[f"{service}/{name}"](path)
                _put(request, path, value)
                answer = await _send(channels, service, name, request)
                cases += 1
                where = f"{service}/{name} {'.'.join(f.name for f in path)}={value!r}"
                if answer.code in (
                    grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.UNKNOWN,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    problems.append(f"{where}: {answer.what[:200]}")
                elif not _allowed(path[-1], value) and not answer.refused:
                    problems.append(f"{where} (out of range) was not refused: {answer.what[:200]}")
    # What was accepted at its boundaries can still be read back: listed, and each task described.
    daemon = channels["OrchestratorService"]
    listed = await _unary(daemon, "OrchestratorService", "ListTasks", pb.ListTasksRequest(limit=1000))
    for record in listed.tasks:
        await _unary(daemon, "OrchestratorService", "GetTask", pb.GetTaskRequest(task_id=record.task_id))
    assert cases > 300
    assert not problems, f"{len(problems)} of {cases} cases:\n" + "\n".join(problems)


async def test_an_empty_request_of_every_rpc_is_answered(cluster: dict[str, Any]) -> None:
    """Zeros everywhere (an empty message): each RPC answers it, refusing what it cannot use, never INTERNAL."""
    problems = []
    for service, descriptor in SERVICES.items():
        for method in descriptor.methods:
            request = message_factory.GetMessageClass(method.input_type)()
            answer = await _send(cluster["channels"], service, method.name, request)
            if answer.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED):
                problems.append(f"{service}/{method.name}: {answer.what[:200]}")
    assert not problems, "\n".join(problems)
