"""Human in the loop with tokens on: a client answers only its own tasks' questions (another's is NOT_FOUND), and
the answer is recorded under the caller's principal whatever the request claims; approving and denying are for
operators (a client is PERMISSION_DENIED), and the decision is recorded under the operator's name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.hitl.workers import AskingWorker
from tests.security.test_auth import FILE, TOKENS, token_file
from worker_abstraction import OrchestratorServer, RegistryServer, bearer
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.auth import Authenticator, TokenFile

__all__ = ["token_file"]  # (the fixture, used here)

pytestmark = pytest.mark.timeout(60)

ALICE, BOB, ROOT = TOKENS["client"], TOKENS["echo-only"], TOKENS["operator"]
SYSTEM = "system-token-0123456789"
assert SYSTEM in FILE


@pytest.fixture
async def daemon(token_file: Path) -> AsyncIterator[str]:
    bearer.use_token(SYSTEM)
    checks = Authenticator(TokenFile(token_file, check_every_seconds=0))
    try:
        async with RegistryServer(port=0, auth=checks) as registry:
            worker = AskingWorker(registry.address, heartbeat_interval_seconds=0.2, auth=checks)
            await worker.start()
            try:
                async with OrchestratorServer(registry.address, port=0, auth=checks) as server:
                    await server.orchestrator.wait_for_workers("review", timeout_seconds=10)
                    yield server.address
            finally:
                await worker.stop(grace_seconds=0.5)
    finally:
        bearer.use_token(None)


async def _ask(address: str, method: str, request: Any, token: str) -> tuple[grpc.StatusCode, Any]:
    async with aio.insecure_channel(address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        call = getattr(stub, method)(request, metadata=(("authorization", f"Bearer {token}"),), timeout=10)
        try:
            if method == "WatchTask":
                found = []
                async for update in call:
                    found.append(update)
                    if update.status in (pb.TASK_STATUS_INPUT_REQUIRED, pb.TASK_STATUS_APPROVAL_REQUIRED):
                        break
                return grpc.StatusCode.OK, found
            return grpc.StatusCode.OK, await call
        except aio.AioRpcError as error:
            return error.code(), error.details()


def _task(capability: str, **params: str) -> pb.Task:
    return pb.Task(
        capability_name=capability, parameters=[pb.TaskParameter(key=k, value_json=v) for k, v in params.items()]
    )


async def test_only_the_owner_answers_and_only_an_operator_decides(daemon: str) -> None:
    code, submitted = await _ask(daemon, "SubmitTask", pb.SubmitTaskRequest(task=_task("review", item='"x"')), ALICE)
    assert code is grpc.StatusCode.OK, submitted
    task_id = submitted.task_id
    code, updates = await _ask(daemon, "WatchTask", pb.WatchTaskRequest(task_id=task_id), ALICE)
    assert code is grpc.StatusCode.OK and updates[-1].status == pb.TASK_STATUS_INPUT_REQUIRED

    answer = pb.ProvideInputRequest(task_id=task_id, value_json='{"approved": true}', answered_by="operator/root")
    code, details = await _ask(daemon, "ProvideInput", answer, BOB)
    assert code is grpc.StatusCode.NOT_FOUND, details  # another's task does not exist for him
    code, answered = await _ask(daemon, "ProvideInput", answer, ALICE)
    assert code is grpc.StatusCode.OK, answered
    code, record = await _ask(daemon, "GetTask", pb.GetTaskRequest(task_id=task_id), ALICE)
    assert record.inputs[0].answer.answered_by == "client/alice"  # not what the request claimed

    gated = pb.SubmitTaskRequest(task=_task("noop"), require_approval=True)
    code, submitted = await _ask(daemon, "SubmitTask", gated, ALICE)
    assert code is grpc.StatusCode.OK, submitted
    code, updates = await _ask(daemon, "WatchTask", pb.WatchTaskRequest(task_id=submitted.task_id), ALICE)
    assert updates[-1].status == pb.TASK_STATUS_APPROVAL_REQUIRED
    for method in ("ApproveTask", "DenyTask"):
        code, details = await _ask(daemon, method, pb.ApprovalRequest(task_id=submitted.task_id), ALICE)
        assert code is grpc.StatusCode.PERMISSION_DENIED, (method, details)
    code, decided = await _ask(daemon, "DenyTask", pb.ApprovalRequest(task_id=submitted.task_id, reason="no"), ROOT)
    assert code is grpc.StatusCode.OK and decided.status == pb.TASK_STATUS_CANCELED
    code, record = await _ask(daemon, "GetTask", pb.GetTaskRequest(task_id=submitted.task_id), ALICE)
    assert record.status == pb.TASK_STATUS_CANCELED and record.approval.decided_by == "operator/root"
    assert not record.approval.approved and record.approval.reason == "no"
