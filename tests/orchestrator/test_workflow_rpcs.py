"""The workflow calls of OrchestratorService as a program in another language makes them: only the generated
stubs and JSON, against a real daemon in this process. Run, watch (resumable), get, list, cancel, rerun; every
refusal with its status code; and one trace per workflow, from the caller's span to each step's handler."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc import aio
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import GATES, eventually
from tests.tracing import named
from tests.workflows.steps import RAN, StepWorker
from worker_abstraction import OrchestratorServer, RegistryServer, RemoteOrchestrator, TaskStatus
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(60)

ETL = {
    "workflow": "etl",
    "steps": [
        {"name": "extract", "capability": "numbers", "params": {"count": 5, "size": 2}},
        {
            "name": "transform",
            "capability": "total",
            "map": {"over": {"$output": "extract", "path": ["chunks"]}, "as": "values", "concurrency": 2},
        },
        {"name": "aggregate", "capability": "total", "params": {"values": {"$output": "transform"}}},
    ],
}


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[OrchestratorServer]:
    RAN.clear()
    await start_worker(StepWorker, max_concurrent_tasks=16)
    async with OrchestratorServer(registry.address, port=0) as server:
        await server.orchestrator.wait_for_workers("numbers", timeout_seconds=10)
        yield server
    GATES.reset()


@pytest.fixture
async def stub(daemon: OrchestratorServer) -> AsyncIterator[pb_grpc.OrchestratorServiceStub]:
    async with aio.insecure_channel(daemon.address) as channel:
        yield pb_grpc.OrchestratorServiceStub(channel)


async def _events(stub: pb_grpc.OrchestratorServiceStub, workflow_id: str, after: int = 0) -> list[pb.WorkflowEvent]:
    request = pb.WatchWorkflowRequest(workflow_id=workflow_id, after_sequence=after)
    return [event async for event in stub.WatchWorkflow(request, timeout=20)]


async def _refusal(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""


async def test_a_workflow_runs_and_is_watched_got_and_listed_with_json_and_the_stubs_alone(
    stub: pb_grpc.OrchestratorServiceStub,
) -> None:
    started = await stub.RunWorkflow(
        pb.RunWorkflowRequest(definition_json=json.dumps(ETL), workflow_id="wf-rpc", idempotency_key="k-1")
    )
    assert (started.workflow_id, started.duplicate) == ("wf-rpc", False)
    events = await _events(stub, "wf-rpc")
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    changes = [(e.step.name, e.step.status) for e in events if e.HasField("step")]
    for step in ("extract", "transform", "aggregate"):
        assert changes.index((step, "RUNNING")) < changes.index((step, "COMPLETED")), changes
    assert ("transform", "COMPLETED") in changes and changes[-1] == ("aggregate", "COMPLETED")
    last = events[-1]
    assert last.status == pb.TASK_STATUS_COMPLETED and last.HasField("run")
    assert {s.name: json.loads(s.output_json) for s in last.run.steps}["aggregate"] == 15
    # Resumed after the second event: the rest, numbered as before.
    assert [e.sequence for e in await _events(stub, "wf-rpc", after=2)] == [e.sequence for e in events[2:]]

    run = await stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id="wf-rpc"))
    assert (run.name, run.status, run.failed_step) == ("etl", pb.TASK_STATUS_COMPLETED, "")
    assert [(s.name, s.status, s.tasks) for s in run.steps] == [
        ("extract", "COMPLETED", 1),
        ("transform", "COMPLETED", 3),
        ("aggregate", "COMPLETED", 1),
    ]
    assert json.loads(run.steps[1].output_json) == [3, 7, 5]
    assert json.loads(run.definition_json) == ETL

    again = await stub.RunWorkflow(pb.RunWorkflowRequest(definition_json=json.dumps(ETL), idempotency_key="k-1"))
    assert (again.workflow_id, again.duplicate) == ("wf-rpc", True)
    listed = await stub.ListWorkflows(pb.ListWorkflowsRequest(statuses=[pb.TASK_STATUS_COMPLETED]))
    assert [w.workflow_id for w in listed.workflows] == ["wf-rpc"] and not listed.workflows[0].definition_json
    assert not (await stub.ListWorkflows(pb.ListWorkflowsRequest(statuses=[pb.TASK_STATUS_FAILED]))).workflows
    assert sum(RAN.values()) == 5  # extract, three chunks, aggregate: once each


async def test_a_failed_step_is_named_and_a_rerun_from_it_keeps_the_completed_outputs(
    stub: pb_grpc.OrchestratorServiceStub,
) -> None:
    flow = {
        "workflow": "fails",
        "steps": [
            {"name": "first", "capability": "numbers", "params": {"count": 2}},
            {"name": "broken", "capability": "fail", "params": {"message": "bad input"}, "after": ["first"]},
        ],
    }
    await stub.RunWorkflow(pb.RunWorkflowRequest(definition_json=json.dumps(flow), workflow_id="wf-fails"))
    last = (await _events(stub, "wf-fails"))[-1]
    assert last.status == pb.TASK_STATUS_FAILED
    assert last.run.failed_step == "broken" and "bad input" in last.run.error

    code, details = await _refusal(stub.RerunWorkflow(pb.RerunWorkflowRequest(workflow_id="wf-fails", step="nope")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "first, broken" in details
    rerun = await stub.RerunWorkflow(
        pb.RerunWorkflowRequest(workflow_id="wf-fails", step="broken", new_workflow_id="wf-fails-2")
    )
    assert rerun.workflow_id == "wf-fails-2"
    final = (await _events(stub, "wf-fails-2"))[-1].run
    assert final.rerun_of == "wf-fails" and final.failed_step == "broken"
    assert [(s.name, s.kept) for s in final.steps] == [("first", True), ("broken", False)]
    assert RAN["wf-fails.first"] == 1 and "wf-fails-2.first" not in RAN  # kept, not run again
    assert RAN["wf-fails-2.broken"] == 1


async def test_cancel_stops_a_running_workflow_and_says_so_once_it_ended(
    stub: pb_grpc.OrchestratorServiceStub,
) -> None:
    flow = {"workflow": "waits", "steps": [{"name": "wait", "capability": "gate", "params": {"name": "never"}}]}
    await stub.RunWorkflow(pb.RunWorkflowRequest(definition_json=json.dumps(flow), workflow_id="wf-wait"))
    watch = stub.WatchWorkflow(pb.WatchWorkflowRequest(workflow_id="wf-wait"), timeout=20)
    async for event in watch:
        if (event.step.name, event.step.status) == ("wait", "RUNNING"):
            break
    answer = await stub.CancelWorkflow(pb.CancelWorkflowRequest(workflow_id="wf-wait", reason="not needed"))
    assert answer.canceled and answer.status == pb.TASK_STATUS_RUNNING
    last = (await _events(stub, "wf-wait"))[-1]
    assert last.status == pb.TASK_STATUS_CANCELED and "not needed" in last.run.error
    assert [(s.name, s.status) for s in last.run.steps] == [("wait", "CANCELED")]
    later = await stub.CancelWorkflow(pb.CancelWorkflowRequest(workflow_id="wf-wait"))
    assert not later.canceled and later.status == pb.TASK_STATUS_CANCELED


async def test_every_refusal_has_its_status_code_and_says_what_to_fix(stub: pb_grpc.OrchestratorServiceStub) -> None:
    broken = {
        "workflow": "broken",
        "steps": [
            {"name": "a", "capability": "no_such_capability"},
            {"name": "b", "capability": "total", "params": {"values": {"$output": "missing"}}},
        ],
    }
    code, details = await _refusal(stub.RunWorkflow(pb.RunWorkflowRequest(definition_json=json.dumps(broken))))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "no_such_capability" in details and "missing" in details  # both problems, at once
    for text, says in (
        ("", "empty"),
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (
            '{"workflow": "w", "steps": [{"name": "a", "capability": "total", "params": {"values": '
            + "[" * 900
            + "]" * 900
            + "}}]}",
            "deep",
        ),
    ):
        code, details = await _refusal(stub.RunWorkflow(pb.RunWorkflowRequest(definition_json=text)))
        assert code is grpc.StatusCode.INVALID_ARGUMENT and says in details, (text[:20], details)
        assert len(details) < 400
    code, details = await _refusal(stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id="wf-none")))
    assert code is grpc.StatusCode.NOT_FOUND and "wf-none" in details
    task = await stub.SubmitTask(pb.SubmitTaskRequest(task=pb.Task(capability_name="double", parameters=[
        pb.TaskParameter(key="value", value_json="2")])))  # fmt: skip
    for call in (
        stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=task.task_id)),
        stub.CancelWorkflow(pb.CancelWorkflowRequest(workflow_id=task.task_id)),
        stub.RerunWorkflow(pb.RerunWorkflowRequest(workflow_id=task.task_id, step="a")),
    ):
        code, details = await _refusal(call)
        assert code is grpc.StatusCode.NOT_FOUND and "it is a task" in details
    code, details = await _refusal(stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id="x" * 10_000)))
    assert code is grpc.StatusCode.NOT_FOUND and len(details) < 400
    code, details = await _refusal(stub.GetWorkflow(pb.GetWorkflowRequest()))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "workflow_id is empty" in details
    code, details = await _refusal(stub.ListWorkflows(pb.ListWorkflowsRequest(page_token="zz")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "page_token" in details

    flow = {"workflow": "w", "steps": [{"name": "wait", "capability": "gate", "params": {"name": "held"}}]}
    await stub.RunWorkflow(pb.RunWorkflowRequest(definition_json=json.dumps(flow), workflow_id="wf-held"))
    code, details = await _refusal(stub.RerunWorkflow(pb.RerunWorkflowRequest(workflow_id="wf-held", step="wait")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "rerun one that ended" in details
    code, details = await _refusal(stub.RunWorkflow(pb.RunWorkflowRequest(definition_json=json.dumps(flow),
                                                                          workflow_id="wf-held")))  # fmt: skip
    assert code is grpc.StatusCode.ALREADY_EXISTS
    GATES.open("held")
    assert (await _events(stub, "wf-held"))[-1].status == pb.TASK_STATUS_COMPLETED


async def test_the_remote_client_makes_the_same_calls_and_a_workflow_is_one_trace(
    spans: InMemorySpanExporter, daemon: OrchestratorServer
) -> None:
    async with RemoteOrchestrator(daemon.address) as remote:
        run = await remote.run_workflow(ETL, workflow_id="wf-traced")
        assert (await run.result(timeout_seconds=20))["aggregate"] == 15
        record = await remote.workflow("wf-traced")
        assert record.outputs == {"extract": record.outputs["extract"], "transform": [3, 7, 5], "aggregate": 15}
        assert [w.workflow_id for w in await remote.workflows()] == ["wf-traced"]
    await eventually(lambda: len(named(spans.get_finished_spans(), "handler")) >= 5, what="5 handler spans")
    found = spans.get_finished_spans()
    [caller] = [s for s in named(found, "submit") if s.kind is SpanKind.CLIENT]
    assert caller.context is not None and caller.attributes is not None
    assert caller.attributes["wa.task_id"] == "wf-traced"
    handlers = named(found, "handler")
    assert len(handlers) == 5
    assert {trace.format_trace_id(s.context.trace_id) for s in handlers if s.context is not None} == {
        trace.format_trace_id(caller.context.trace_id)
    }


async def test_two_handles_on_one_run_from_one_client_both_hear_its_end(daemon: OrchestratorServer) -> None:
    flow = {"workflow": "w", "steps": [{"name": "wait", "capability": "gate", "params": {"name": "twice"}}]}
    async with RemoteOrchestrator(daemon.address) as remote:
        first = await remote.run_workflow(flow, workflow_id="wf-twice")
        second = await remote.watch_workflow("wf-twice")
        task = await remote.execute_task("gate", {"name": "twice-task"})
        again = await remote.watch(task.task_id)
        GATES.open("twice")
        GATES.open("twice-task")
        assert (await second.wait(timeout_seconds=10)).status is TaskStatus.COMPLETED
        assert (await first.wait(timeout_seconds=10)).status is TaskStatus.COMPLETED
        assert (await again.wait(timeout_seconds=10)).status is TaskStatus.COMPLETED
        assert (await task.wait(timeout_seconds=10)).status is TaskStatus.COMPLETED


async def test_a_watch_resumed_after_a_restart_hears_every_step_change_of_the_resumed_run(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Any
) -> None:
    RAN.clear()
    await start_worker(StepWorker, max_concurrent_tasks=16)
    store = str(tmp_path / "tasks.db")
    flow = {
        "workflow": "resumed",
        "steps": [
            # Six steps done before the restart: the run before it said more than the resumed run will.
            *({"name": f"a{i}", "capability": "double", "params": {"value": i}} for i in range(6)),
            {"name": "b", "capability": "gate", "params": {"name": "resume-b"}, "after": [f"a{i}" for i in range(6)]},
            {"name": "c", "capability": "double", "params": {"value": 3}, "after": ["b"]},
        ],
    }
    seen: list[pb.WorkflowEvent] = []
    async with OrchestratorServer(registry.address, port=0, store_path=store) as first:
        await first.orchestrator.wait_for_workers("gate", timeout_seconds=10)
        async with aio.insecure_channel(first.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            await stub.RunWorkflow(pb.RunWorkflowRequest(definition_json=json.dumps(flow), workflow_id="wf-r"))
            async for event in stub.WatchWorkflow(pb.WatchWorkflowRequest(workflow_id="wf-r"), timeout=20):
                seen.append(event)
                if (event.step.name, event.step.status) == ("b", "RUNNING"):
                    break
    async with (
        OrchestratorServer(registry.address, port=0, store_path=store) as second,
        aio.insecure_channel(second.address) as channel,
    ):
        stub = pb_grpc.OrchestratorServiceStub(channel)
        GATES.open("resume-b")
        request = pb.WatchWorkflowRequest(workflow_id="wf-r", after_sequence=seen[-1].sequence)
        later = [event async for event in stub.WatchWorkflow(request, timeout=20)]
    sequences = [e.sequence for e in seen + later]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    changes = {(e.step.name, e.step.status) for e in later if e.HasField("step")}
    # The resumed run tells every step again as it finds it: the watcher hears all of it, none dropped.
    assert {(f"a{i}", "COMPLETED") for i in range(6)} | {("b", "COMPLETED"), ("c", "COMPLETED")} <= changes, changes
    assert later[-1].status == pb.TASK_STATUS_COMPLETED
    assert all(RAN[f"wf-r.a{i}"] == 1 for i in range(6))  # completed steps are not run again
