"""Workflows under credentials: a workflow's steps run under its owner, so a caller may run one only when it
may call every capability its steps call (whichever call it uses: RunWorkflow or SubmitTask of `wa.workflow`),
and a client sees, watches, cancels and reruns only its own runs, as it does tasks."""

from __future__ import annotations

import json
from pathlib import Path

import grpc

from tests.security.test_auth import TOKENS, token_file
from tests.security.test_ownership import _ask, parts
from worker_abstraction import OrchestratorServer
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.auth import Authenticator

__all__ = ["parts", "token_file"]  # (the fixtures, used here)

ALICE, ECHO_ONLY, ROOT = TOKENS["client"], TOKENS["echo-only"], TOKENS["operator"]


def _flow(*capabilities: str, failure: str = "") -> str:
    steps = [{"name": f"s{i}", "capability": c, "params": {"text": "hi"}} for i, c in enumerate(capabilities)]
    flow: dict[str, object] = {"workflow": "w", "steps": steps}
    if failure:
        flow["on_failure"] = {"name": "alert", "capability": failure, "params": {"text": "failed"}}
    return json.dumps(flow)


async def test_a_workflow_may_call_only_what_its_caller_may_call(parts: tuple[Authenticator, str, Path]) -> None:
    checks, registry, store = parts
    async with OrchestratorServer(registry, port=0, auth=checks, store_path=str(store)) as daemon:
        await daemon.orchestrator.wait_for_workers("echo", timeout_seconds=10)
        address = daemon.address
        # client/echo may call echo alone: a workflow of echo steps is its to run.
        code, ran = await _ask(address, "RunWorkflow", pb.RunWorkflowRequest(definition_json=_flow("echo")), ECHO_ONLY)
        assert code is grpc.StatusCode.OK, ran
        code, events = await _ask(address, "WatchWorkflow", pb.WatchWorkflowRequest(workflow_id=ran.workflow_id),
                                  ECHO_ONLY)  # fmt: skip
        assert code is grpc.StatusCode.OK and events[-1].status == pb.TASK_STATUS_COMPLETED

        # A step, or the on-failure step, it may not call: refused before anything runs, on either call.
        submit = pb.SubmitTaskRequest(task=pb.Task(capability_name="wa.workflow", parameters=[
            pb.TaskParameter(key="workflow", value_json=_flow("echo", "explode"))]))  # fmt: skip
        for method, request in (
            ("RunWorkflow", pb.RunWorkflowRequest(definition_json=_flow("echo", "explode"))),
            ("RunWorkflow", pb.RunWorkflowRequest(definition_json=_flow("echo", failure="explode"))),
            ("SubmitTask", submit),
        ):
            code, details = await _ask(address, method, request, ECHO_ONLY)
            assert code is grpc.StatusCode.PERMISSION_DENIED and "explode" in details, (method, code, details)
        code, listed = await _ask(address, "ListWorkflows", pb.ListWorkflowsRequest(), ECHO_ONLY)
        assert [w.workflow_id for w in listed.workflows] == [ran.workflow_id]


async def test_a_client_sees_and_touches_only_its_own_workflows(parts: tuple[Authenticator, str, Path]) -> None:
    checks, registry, store = parts
    async with OrchestratorServer(registry, port=0, auth=checks, store_path=str(store)) as daemon:
        await daemon.orchestrator.wait_for_workers("echo", timeout_seconds=10)
        address = daemon.address
        code, mine = await _ask(address, "RunWorkflow", pb.RunWorkflowRequest(definition_json=_flow("echo")), ALICE)
        assert code is grpc.StatusCode.OK, mine
        ident = mine.workflow_id
        code, events = await _ask(address, "WatchWorkflow", pb.WatchWorkflowRequest(workflow_id=ident), ALICE)
        assert code is grpc.StatusCode.OK and events[-1].status == pb.TASK_STATUS_COMPLETED

        for method, request in (
            ("GetWorkflow", pb.GetWorkflowRequest(workflow_id=ident)),
            ("WatchWorkflow", pb.WatchWorkflowRequest(workflow_id=ident)),
            ("CancelWorkflow", pb.CancelWorkflowRequest(workflow_id=ident)),
            ("RerunWorkflow", pb.RerunWorkflowRequest(workflow_id=ident, step="s0")),
        ):
            code, details = await _ask(address, method, request, ECHO_ONLY)
            assert code is grpc.StatusCode.NOT_FOUND, (method, code, details)
        code, theirs = await _ask(address, "ListWorkflows", pb.ListWorkflowsRequest(), ECHO_ONLY)
        assert code is grpc.StatusCode.OK and not theirs.workflows
        code, everyone = await _ask(address, "ListWorkflows", pb.ListWorkflowsRequest(), ROOT)
        assert [w.workflow_id for w in everyone.workflows] == [ident]
        # Her rerun is hers too.
        code, rerun = await _ask(address, "RerunWorkflow", pb.RerunWorkflowRequest(workflow_id=ident, step="s0"),
                                 ALICE)  # fmt: skip
        assert code is grpc.StatusCode.OK, rerun
        code, record = await _ask(address, "GetTask", pb.GetTaskRequest(task_id=rerun.workflow_id), ALICE)
        assert code is grpc.StatusCode.OK and record.owner == "client/alice"
