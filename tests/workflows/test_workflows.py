"""Workflows on the engine in this process: DAGs, maps, the canvas, checks, failure, rerun, cancel, deadline.

Real workers (`StepWorker`) on a real registry; the ledger `RAN` counts each step task's runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import GATES, eventually
from tests.workflows.steps import MOST, RAN, StepWorker
from worker_abstraction import AsyncOrchestrator, InvalidParametersError, RegistryServer, TaskFailedError, TaskStatus
from worker_abstraction.workflows import (
    FAILED_STEP,
    FAILURE_ERROR,
    Workflow,
    chain,
    chord,
    group,
    signature,
    step_task_id,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def orchestrator(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[AsyncOrchestrator]:
    RAN.clear()
    MOST.clear()
    await start_worker(StepWorker, max_concurrent_tasks=64)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("numbers", timeout_seconds=10)
        yield orchestrator
    GATES.reset()


def etl(*, fail_fast: bool = True) -> Workflow:
    flow = Workflow("etl", fail_fast=fail_fast)
    numbers = flow.step("extract", "numbers", {"count": 7, "size": 3})
    sums = flow.map("transform", "total", over=numbers["chunks"], item="values", concurrency=2)
    flow.step("aggregate", "total", {"values": sums})
    flow.step("check", "double", {"value": numbers["values"][-1]})
    return flow


async def test_a_dag_with_a_map_runs_each_step_once_and_gathers_the_map_in_order(
    orchestrator: AsyncOrchestrator,
) -> None:
    handle = await orchestrator.run_workflow(etl(), workflow_id="wf-etl")
    outputs = await handle.result(timeout_seconds=20)
    assert outputs["transform"] == [6, 15, 7]  # chunks [1,2,3], [4,5,6], [7], in order
    assert outputs["aggregate"] == 28 and outputs["check"] == 14
    ids = [step_task_id("wf-etl", "transform", i) for i in range(3)]
    assert [RAN[i] for i in [*ids, "wf-etl.extract", "wf-etl.aggregate", "wf-etl.check"]] == [1] * 6
    assert MOST["total"] <= 2  # the map's concurrency
    record = await orchestrator.workflow("wf-etl")
    assert record.status is TaskStatus.COMPLETED and record.failed_step == ""
    assert {name: step.status for name, step in record.steps.items()} == dict.fromkeys(
        ["extract", "transform", "aggregate", "check"], "COMPLETED"
    )
    assert record.steps["transform"].tasks == 3
    seen = [(step.name, step.status) async for step in handle]
    assert seen.index(("extract", "COMPLETED")) < seen.index(("transform", "RUNNING"))
    assert seen.index(("transform", "COMPLETED")) < seen.index(("aggregate", "RUNNING"))


async def test_the_canvas_chains_groups_and_chords(orchestrator: AsyncOrchestrator) -> None:
    made = chain(
        signature("numbers", {"count": 4}, name="numbers"),
        chord(
            [signature("total", takes="values", name=f"part{i}") for i in range(2)],
            signature("total", takes="values", name="sum"),
        ),
    ).workflow("shape")
    assert [step.name for step in made.steps] == ["numbers", "part0", "part1", "sum"]
    assert {name: made.get(name).parents for name in ("part0", "sum")} == {  # type: ignore[union-attr]
        "part0": ("numbers",),
        "sum": ("part0", "part1"),
    }
    simple = chain(
        signature("double", {"value": 3}, name="a"),
        group(signature("double", takes="value", name="b"), signature("double", takes="value", name="c")),
        signature("total", takes="values", name="d"),
    )
    outputs = await (await orchestrator.run_workflow(simple, workflow_id="wf-canvas")).result(timeout_seconds=20)
    assert outputs == {"a": 6, "b": 12, "c": 12, "d": 24}


async def test_a_workflow_is_checked_whole_before_anything_runs(orchestrator: AsyncOrchestrator) -> None:
    flow = Workflow("broken")
    flow.step("a", "numbers", {"count": "many"})  # breaks the declared int
    flow.step("b", "no-such-capability", {})
    flow.step("c", "double", {"value": {"$output": "nowhere"}})  # a literal dict: not a reference in Python
    flow.step("d", "total", {"values": flow.step("e", "double", {"value": 1, "extra": True})})
    with pytest.raises(InvalidParametersError) as refused:
        await orchestrator.run_workflow(flow)
    text = str(refused.value)
    assert "step 'a'" in text and "count" in text
    assert "no live worker offers capability 'no-such-capability'" in text
    assert "step 'e': unknown parameter 'extra'" in text
    cyclic = {
        "workflow": "cyclic",
        "steps": [
            {"name": "x", "capability": "double", "params": {"value": {"$output": "y"}}},
            {"name": "y", "capability": "double", "params": {"value": {"$output": "x"}}},
            {"name": "z", "capability": "double", "after": ["missing"], "params": {"value": 1}},
        ],
    }
    with pytest.raises(InvalidParametersError, match="after names a step that does not exist: 'missing'"):
        await orchestrator.run_workflow(cyclic)
    del cyclic["steps"][2]
    with pytest.raises(InvalidParametersError, match="cycle: x waits for y waits for x"):
        await orchestrator.run_workflow(cyclic)
    assert not RAN


async def test_a_failed_step_fails_fast_and_the_on_failure_step_runs_once_with_what_failed(
    orchestrator: AsyncOrchestrator,
) -> None:
    flow = Workflow("fragile")
    flow.step("slow", "gate", {"name": "never"})
    flow.step("bad", "fail", {"message": "no data"})
    flow.step("after_bad", "double", {"value": 1}, after=["bad"])
    flow.on_failure("alert", "note", {"step": FAILED_STEP, "error": FAILURE_ERROR})
    handle = await orchestrator.run_workflow(flow, workflow_id="wf-fragile")
    with pytest.raises(TaskFailedError, match="step 'bad' failed"):
        await handle.result(timeout_seconds=20)
    record = handle.record()
    assert record.status is TaskStatus.FAILED and record.failed_step == "bad"
    assert "no data" in record.error
    statuses = {name: step.status for name, step in record.steps.items()}
    assert statuses == {"slow": "CANCELED", "bad": "FAILED", "after_bad": "SKIPPED", "alert": "COMPLETED"}
    assert record.steps["alert"].output["step"] == "bad" and "no data" in record.steps["alert"].output["error"]
    assert RAN["wf-fragile.alert"] == 1 and RAN["wf-fragile.after_bad"] == 0
    slow = await orchestrator.watch("wf-fragile.slow")
    assert (await slow.wait(timeout_seconds=10)).status is TaskStatus.CANCELED  # the sibling's task itself


async def test_without_fail_fast_the_independent_branches_finish(orchestrator: AsyncOrchestrator) -> None:
    flow = Workflow("branches", fail_fast=False)
    flow.step("bad", "fail", {"message": "no"})
    flow.step("after_bad", "double", {"value": 1}, after=["bad"])
    ok = flow.step("ok", "double", {"value": 2})
    flow.step("after_ok", "double", {"value": ok})
    handle = await orchestrator.run_workflow(flow)
    record = await handle.wait(timeout_seconds=20)
    assert record.status is TaskStatus.FAILED and record.failed_step == "bad"
    assert record.outputs == {"ok": 4, "after_ok": 8}
    assert record.steps["after_bad"].status == "SKIPPED"


async def test_a_rerun_from_the_failed_step_keeps_the_completed_outputs(orchestrator: AsyncOrchestrator) -> None:
    flow = Workflow("rerun")
    first = flow.step("first", "double", {"value": 5})
    flow.step("flaky", "total", {"values": [first, "oops"]})  # fails in the worker: "oops" is no number
    flow.step("last", "double", {"value": 1}, after=["flaky"])
    handle = await orchestrator.run_workflow(flow, workflow_id="wf-rerun")
    record = await handle.wait(timeout_seconds=20)
    assert record.failed_step == "flaky" and record.outputs == {"first": 10}
    for downstream in (False, True):
        again = await orchestrator.rerun_workflow("wf-rerun", "flaky", downstream=downstream)
        rerun = await again.wait(timeout_seconds=20)
        assert rerun.rerun_of == "wf-rerun" and rerun.failed_step == "flaky"
        assert rerun.steps["first"].kept and rerun.steps["first"].output == 10
        assert RAN[step_task_id(again.workflow_id, "first")] == 0  # not run again
        assert RAN[step_task_id(again.workflow_id, "flaky")] == 1  # run again (and failed again)
    with pytest.raises(InvalidParametersError, match="has no step 'nope'"):
        await orchestrator.rerun_workflow("wf-rerun", "nope")


async def test_a_rerun_runs_the_failed_step_and_downstream_to_completion(orchestrator: AsyncOrchestrator) -> None:
    flow = Workflow("recover")
    flow.step("a", "double", {"value": 1})
    flow.step("b", "gate", {"name": "b-open"}, after=["a"])
    flow.step("c", "double", {"value": 3}, after=["b"])
    handle = await orchestrator.run_workflow(flow, workflow_id="wf-recover")
    await eventually(lambda: handle.record().steps["b"].status == "RUNNING", what="b started")
    assert await handle.cancel("stop for now")
    record = await handle.wait(timeout_seconds=20)
    assert record.status is TaskStatus.CANCELED and record.steps["b"].status == "CANCELED"
    assert record.steps["c"].status == "SKIPPED"  # never started: it does not wait for good
    again = await orchestrator.rerun_workflow("wf-recover", "b", new_workflow_id="wf-recover-2")
    # While it runs, its record says what it reruns and which outputs it kept.
    await eventually(lambda: again.record().steps["b"].status == "RUNNING", what="b started again")
    running = again.record()
    assert running.rerun_of == "wf-recover" and running.steps["a"].kept and running.steps["a"].output == 2
    assert (await orchestrator.workflow("wf-recover-2")).rerun_of == "wf-recover"
    GATES.open("b-open")
    assert await again.result(timeout_seconds=20) == {"a": 2, "b": "b-open", "c": 6}
    assert RAN["wf-recover.a"] == 1 and RAN[step_task_id(again.workflow_id, "a")] == 0


async def test_an_idempotency_key_returns_the_same_run(orchestrator: AsyncOrchestrator) -> None:
    one = await orchestrator.run_workflow(etl(), idempotency_key="nightly-2026-12-07")
    two = await orchestrator.run_workflow(etl(), idempotency_key="nightly-2026-12-07")
    assert one.workflow_id == two.workflow_id
    await one.result(timeout_seconds=20)
    assert RAN[step_task_id(one.workflow_id, "extract")] == 1


async def test_a_deadline_cancels_the_running_steps_and_fails_the_workflow(orchestrator: AsyncOrchestrator) -> None:
    flow = Workflow("late", deadline_seconds=0.5)
    flow.step("forever", "gate", {"name": "never-opened"})
    handle = await orchestrator.run_workflow(flow, workflow_id="wf-late")
    record = await handle.wait(timeout_seconds=20)
    assert record.status is TaskStatus.FAILED and "deadline of 0.5 s" in record.error
    step = await orchestrator.watch("wf-late.forever")  # its task was asked to stop
    assert (await step.wait(timeout_seconds=10)).status is TaskStatus.CANCELED


async def test_a_reference_that_cannot_be_resolved_fails_its_step_without_hanging(
    orchestrator: AsyncOrchestrator,
) -> None:
    flow = Workflow("unresolved")
    numbers = flow.step("n", "numbers", {"count": 2})
    flow.step("d", "double", {"value": numbers["no_such_field"]})
    record = await (await orchestrator.run_workflow(flow)).wait(timeout_seconds=20)
    assert record.failed_step == "d" and "has no ['no_such_field']" in record.error


async def test_a_workflow_run_from_its_file_format_is_listed_with_its_steps(orchestrator: AsyncOrchestrator) -> None:
    document = Workflow.from_json(etl().to_json())
    assert document.to_dict() == etl().to_dict()
    await (await orchestrator.run_workflow(document.to_dict(), workflow_id="wf-listed")).result(timeout_seconds=20)
    listed = {record.workflow_id: record for record in await orchestrator.workflows()}
    assert listed["wf-listed"].status is TaskStatus.COMPLETED and listed["wf-listed"].name == "etl"
    assert listed["wf-listed"].outputs["aggregate"] == 28


async def test_a_workflow_id_too_long_for_its_steps_ids_is_refused_before_anything_runs(
    orchestrator: AsyncOrchestrator,
) -> None:
    flow = Workflow("long")
    flow.step("step", "double", {"value": 1})
    with pytest.raises(InvalidParametersError, match="too long for its steps' task ids"):
        await orchestrator.run_workflow(flow, workflow_id="w" * 252)
    assert (await (await orchestrator.run_workflow(flow, workflow_id="w" * 251)).result(timeout_seconds=20)) == {
        "step": 2
    }
