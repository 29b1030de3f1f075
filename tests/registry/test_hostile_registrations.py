"""Registrations are input from the network: bounded, checked field by field, their schemas safe to run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc import aio
from pydantic import Field

from worker_abstraction import AsyncOrchestrator, BaseWorker, InvalidParametersError, RegistryServer, capability
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.registry.events import EventHub, WorkerEvent, WorkerEventType
from worker_abstraction.schemas import schema_problems, validator
from worker_abstraction.types import CapabilitySpec, ParameterSpec, WorkerInfo


@pytest.fixture
async def stub(registry: RegistryServer) -> AsyncIterator[pb_grpc.RegistryServiceStub]:
    async with aio.insecure_channel(registry.address) as channel:
        yield pb_grpc.RegistryServiceStub(channel)


def _capability(schema: str = "", **fields: object) -> pb.ToolCapability:
    parameter = pb.ToolParameter(name="text", type="string", required=True, json_schema=schema)
    return pb.ToolCapability(name=str(fields.pop("name", "match")), parameters=[parameter], **fields)  # type: ignore[arg-type]


def _info(**fields: object) -> pb.WorkerInfo:
    values: dict[str, object] = {"worker_id": "w1", "name": "w", "address": "127.0.0.1:6000"}
    values.setdefault("capabilities", [_capability()])
    values.update(fields)
    return pb.WorkerInfo(**values)  # type: ignore[arg-type]


HOSTILE = [
    ({"name": "n" * 300}, "name may be at most"),
    ({"worker_id": "line\nbreak"}, "printable"),
    ({"address": "h" * 100_000 + ":1"}, "address"),
    ({"version": "v" * 1000}, "version"),
    ({"tags": ["t"] * 100}, "tags"),
    ({"max_concurrent_tasks": -1}, "max_concurrent_tasks"),
    ({"capabilities": [_capability(max_concurrent_tasks=-5)]}, "max_concurrent_tasks"),
    ({"capabilities": [_capability("{")]}, "not JSON"),
    ({"capabilities": [_capability('"a string"')]}, "JSON object"),
    ({"capabilities": [_capability('{"type": 5}')]}, "not a valid JSON Schema"),
    ({"capabilities": [_capability('{"pattern": "(a)\\\\1"}')]}, "linear time"),
    ({"capabilities": [_capability('{"pattern": "(?=a)a"}')]}, "linear time"),
    ({"capabilities": [_capability("[" * 100 + "]" * 100)]}, "json_schema"),
    ({"capabilities": [_capability(description="d" * 3 * 2**20)]}, "a registration may take at most"),
    ({"capabilities": [_capability(name=f"c{i}") for i in range(600)]}, "at most 512 capabilities"),
]


@pytest.mark.parametrize(("fields", "problem"), HOSTILE, ids=[p for _, p in HOSTILE])
async def test_a_hostile_registration_is_refused_briefly_and_changes_nothing(
    stub: pb_grpc.RegistryServiceStub, fields: dict[str, object], problem: str
) -> None:
    with pytest.raises(aio.AioRpcError) as refused:
        await stub.RegisterWorker(pb.RegisterWorkerRequest(worker_info=_info(**fields)), timeout=10)
    details = refused.value.details() or ""
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert problem in details and len(details) < 4000, details[:300]
    assert [w async for w in stub.GetAvailableWorkers(empty_pb2.Empty(), timeout=10)] == []


class Matcher(BaseWorker):
    @capability
    async def match(self, text: Annotated[str, Field(pattern="^(a+)+$")]) -> str:
        """Echo a run of a's (a pattern that backtracks catastrophically in Python's own engine)."""
        return text


async def test_a_backtracking_pattern_is_run_in_linear_time(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    await start_worker(Matcher)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("match", timeout_seconds=10)
        async with asyncio.timeout(5):  # Python's own engine takes minutes on this input
            with pytest.raises(InvalidParametersError) as refused:
                await orchestrator.execute_task("match", {"text": "a" * 40 + "!"})
            assert await (await orchestrator.execute_task("match", {"text": "aaa"})).result() == "aaa"
    assert "does not match" in refused.value.problems[0]


def test_schemas_with_patterns_are_checked_and_run_by_re2() -> None:
    assert schema_problems("") == []
    assert schema_problems('{"type": "object", "patternProperties": {"^x-": {"type": "integer"}}}') == []
    assert schema_problems('{"patternProperties": {"^x": {}}, "unevaluatedProperties": false}') != []
    checker = validator("object", '{"patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": false}')
    assert not list(checker.iter_errors({"x-a": 1}))
    assert [e.message for e in checker.iter_errors({"x-a": "one", "other": 1})] != []
    assert "unexpected" in " ".join(e.message for e in checker.iter_errors({"other": 1}))


async def test_a_watcher_that_stops_reading_is_dropped_past_its_byte_budget() -> None:
    hub = EventHub(max_backlog_bytes=2**20)
    watcher = hub.subscribe()
    big = WorkerInfo(
        "w1",
        "w",
        "127.0.0.1:1",
        capabilities=(CapabilitySpec("c", "d" * 100_000, (ParameterSpec("p", "string"),)),),
    )
    for _ in range(50):  # about 5 MB of registrations, never read
        hub.publish(WorkerEvent(WorkerEventType.UPDATED, big))
    events = [await hub.next(watcher) for _ in range(watcher.qsize())]
    assert events[-1] is None and len(events) <= 11  # ten fit in the budget, then "you fell behind"
    reader = hub.subscribe()  # a reader that keeps up is never dropped
    for _ in range(50):
        hub.publish(WorkerEvent(WorkerEventType.UPDATED, big))
        assert await hub.next(reader) is not None
