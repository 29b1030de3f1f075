"""Capabilities found at run time: `schema_capability` describes one by JSON Schemas (an MCP tool's, an A2A
skill's), `set_capabilities` serves a new set and registers it again, and orchestrators see the change."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import eventually
from worker_abstraction import (
    AsyncOrchestrator,
    BaseWorker,
    InvalidCapabilityError,
    InvalidParametersError,
    RegistryServer,
    TaskContext,
    schema_capability,
)

pytestmark = pytest.mark.timeout(60)

ADD_SCHEMA = {
    "type": "object",
    "properties": {
        "a": {"type": "integer", "description": "first"},
        "b": {"type": "integer", "minimum": 0},
    },
    "required": ["a"],
}


async def _add(arguments: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    ctx.report_progress(0.5, "adding")
    return {"sum": arguments["a"] + arguments.get("b", 0), "task": ctx.task_id}


async def _shout(arguments: dict[str, Any], ctx: TaskContext) -> str:
    return str(arguments["text"]).upper()


def test_a_schema_capability_describes_its_parameters_from_the_schema() -> None:
    made = schema_capability(
        "add", _add, input_schema=ADD_SCHEMA, output_schema={"type": "object"}, description="Add.", version="2.0.0"
    )
    spec = made.spec
    assert [(p.name, p.type, p.required) for p in spec.parameters] == [("a", "integer", True), ("b", "integer", False)]
    assert spec.parameter("a") is not None and spec.parameter("a").description == "first"  # type: ignore[union-attr]
    assert spec.version == "2.0.0" and spec.output_schema == '{"type": "object"}'
    assert made.parse_arguments({"a": "1", "b": "-1"})[1] == ["parameter 'b': -1 is less than the minimum of 0"]
    with pytest.raises(InvalidCapabilityError, match="object"):
        schema_capability("bad", _add, input_schema={"type": "string"})
    with pytest.raises(InvalidCapabilityError, match="name"):
        schema_capability("no spaces", _add)


async def test_a_worker_serves_capabilities_set_at_run_time_and_the_orchestrator_sees_them(
    registry: RegistryServer, start_worker: Any
) -> None:
    worker: BaseWorker = await start_worker(BaseWorker)
    await worker.set_capabilities([schema_capability("add", _add, input_schema=ADD_SCHEMA)])
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("add", timeout_seconds=10)
        handle = await orchestrator.execute_task("add", {"a": 2, "b": 3})
        assert (await handle.result(timeout_seconds=10))["sum"] == 5
        with pytest.raises(InvalidParametersError, match="minimum"):
            await orchestrator.execute_task("add", {"a": 2, "b": -3})

        shout = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
        await worker.set_capabilities([schema_capability("shout", _shout, input_schema=shout)])
        await orchestrator.wait_for_workers("shout", timeout_seconds=10)

        async def add_is_gone() -> bool:
            return all(w.capability("add") is None for w in await orchestrator.workers())

        await eventually(add_is_gone, timeout_seconds=10, what="the orchestrator sees add gone")
        assert sorted(worker.served) == ["shout"]
        assert await (await orchestrator.execute_task("shout", {"text": "hi"})).result(timeout_seconds=10) == "HI"
