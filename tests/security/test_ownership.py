"""A client sees, watches and cancels only its own tasks; an operator sees every task; the owner is taken
from the caller's credentials (never from the request), and is kept in the store across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.conftest import ToolWorker
from tests.security.test_auth import FILE, TOKENS, token_file
from worker_abstraction import OrchestratorServer, RegistryServer, bearer
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.auth import Authenticator, TokenFile

__all__ = ["token_file"]  # (the fixture, used here)

ALICE, BOB, ROOT = TOKENS["client"], TOKENS["echo-only"], TOKENS["operator"]  # client/alice, client/echo
SYSTEM = "system-token-0123456789"
assert SYSTEM in FILE


@pytest.fixture
async def parts(token_file: Path, tmp_path: Path) -> AsyncIterator[tuple[Authenticator, str, Path]]:
    """Checks, a registry with a worker, and the path of a store: what a daemon is started from."""
    bearer.use_token(SYSTEM)
    checks = Authenticator(TokenFile(token_file, check_every_seconds=0))
    try:
        async with RegistryServer(port=0, auth=checks) as registry:
            worker = ToolWorker(registry.address, heartbeat_interval_seconds=0.2, auth=checks)
            await worker.start()
            try:
                yield checks, registry.address, tmp_path / "tasks.db"
            finally:
                await worker.stop(grace_seconds=0.5)
    finally:
        bearer.use_token(None)


async def _ask(address: str, method: str, request: Any, token: str) -> tuple[grpc.StatusCode, Any]:
    """(status code, response) of one unary call to the daemon (a streaming one: the list of its messages)."""
    async with aio.insecure_channel(address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        call = getattr(stub, method)(request, metadata=(("authorization", f"Bearer {token}"),), timeout=10)
        try:
            if method in ("WatchTask", "WatchWorkflow"):
                return grpc.StatusCode.OK, [update async for update in call]
            return grpc.StatusCode.OK, await call
        except aio.AioRpcError as error:
            return error.code(), error.details()


def _echo(text: str, **fields: Any) -> pb.SubmitTaskRequest:
    task = pb.Task(capability_name="echo", parameters=[pb.TaskParameter(key="text", value_json=f'"{text}"')])
    return pb.SubmitTaskRequest(task=task, **fields)


async def _listed(address: str, token: str) -> set[str]:
    code, page = await _ask(address, "ListTasks", pb.ListTasksRequest(limit=1000), token)
    assert code is grpc.StatusCode.OK
    return {record.task_id for record in page.tasks}


async def test_a_client_sees_only_its_own_tasks_and_an_operator_sees_all(
    parts: tuple[Authenticator, str, Path],
) -> None:
    checks, registry, store = parts
    async with OrchestratorServer(registry, port=0, auth=checks, store_path=str(store)) as daemon:
        await daemon.orchestrator.wait_for_workers("echo", timeout_seconds=10)
        address = daemon.address
        # Alice claims to be the operator in the request: the owner comes from her token all the same.
        code, submitted = await _ask(address, "SubmitTask", _echo("a", owner="operator/root"), ALICE)
        assert code is grpc.StatusCode.OK, submitted
        mine = submitted.task_id
        code, updates = await _ask(address, "WatchTask", pb.WatchTaskRequest(task_id=mine), ALICE)
        assert code is grpc.StatusCode.OK and updates[-1].status == pb.TASK_STATUS_COMPLETED
        code, record = await _ask(address, "GetTask", pb.GetTaskRequest(task_id=mine), ALICE)
        assert code is grpc.StatusCode.OK and record.owner == "client/alice"

        # Bob is told the task does not exist, whichever way he asks, and his list leaves it out.
        for method, request in (
            ("GetTask", pb.GetTaskRequest(task_id=mine)),
            ("WatchTask", pb.WatchTaskRequest(task_id=mine)),
            ("CancelTask", pb.CancelTaskRequest(task_id=mine)),
        ):
            code, details = await _ask(address, method, request, BOB)
            assert code is grpc.StatusCode.NOT_FOUND and "unknown" in details, (method, code, details)
        code, theirs = await _ask(address, "SubmitTask", _echo("b"), BOB)
        assert code is grpc.StatusCode.OK
        assert await _listed(address, BOB) == {theirs.task_id}
        assert mine in await _listed(address, ALICE) and theirs.task_id not in await _listed(address, ALICE)
        assert {mine, theirs.task_id} <= await _listed(address, ROOT)

        # An idempotency key is its owner's: Bob's equal key names a task of his own, never Alice's.
        code, first = await _ask(address, "SubmitTask", _echo("k", idempotency_key="key-1"), ALICE)
        assert code is grpc.StatusCode.OK and not first.duplicate
        code, bobs = await _ask(address, "SubmitTask", _echo("k", idempotency_key="key-1"), BOB)
        assert code is grpc.StatusCode.OK and not bobs.duplicate and bobs.task_id != first.task_id
        code, again = await _ask(address, "SubmitTask", _echo("k", idempotency_key="key-1"), ALICE)
        assert code is grpc.StatusCode.OK and again.duplicate and again.task_id == first.task_id
        code, bobs_again = await _ask(address, "SubmitTask", _echo("k", idempotency_key="key-1"), BOB)
        assert code is grpc.StatusCode.OK and bobs_again.duplicate and bobs_again.task_id == bobs.task_id
        code, record = await _ask(address, "GetTask", pb.GetTaskRequest(task_id=bobs.task_id), BOB)
        assert code is grpc.StatusCode.OK and record.idempotency_key == "key-1" and record.owner == "client/echo"

    # After a restart the owners come back from the store.
    async with OrchestratorServer(registry, port=0, auth=checks, store_path=str(store)) as daemon:
        code, details = await _ask(daemon.address, "GetTask", pb.GetTaskRequest(task_id=mine), BOB)
        assert code is grpc.StatusCode.NOT_FOUND
        code, record = await _ask(daemon.address, "GetTask", pb.GetTaskRequest(task_id=mine), ALICE)
        assert code is grpc.StatusCode.OK and record.owner == "client/alice"
        assert await _listed(daemon.address, BOB) == {theirs.task_id, bobs.task_id}
        assert {mine, theirs.task_id, first.task_id} <= await _listed(daemon.address, ROOT)
        # ... and so do the keys, each in its owner's space.
        code, again = await _ask(daemon.address, "SubmitTask", _echo("k", idempotency_key="key-1"), BOB)
        assert code is grpc.StatusCode.OK and again.duplicate and again.task_id == bobs.task_id
        code, again = await _ask(daemon.address, "SubmitTask", _echo("k", idempotency_key="key-1"), ALICE)
        assert code is grpc.StatusCode.OK and again.duplicate and again.task_id == first.task_id


async def test_a_dead_letter_requeued_by_an_operator_stays_its_submitters(
    parts: tuple[Authenticator, str, Path],
) -> None:
    checks, registry, _ = parts
    async with OrchestratorServer(registry, port=0, auth=checks) as daemon:
        await daemon.orchestrator.wait_for_workers("explode", timeout_seconds=10)
        address = daemon.address
        retry = pb.RetryPolicy(
            max_attempts=2, initial_backoff_seconds=0.01, backoff_multiplier=1, retry_task_errors=True
        )
        task = pb.Task(capability_name="explode", parameters=[pb.TaskParameter(key="message", value_json='"no"')])
        code, submitted = await _ask(address, "SubmitTask", pb.SubmitTaskRequest(task=task, retry_policy=retry), ALICE)
        assert code is grpc.StatusCode.OK, submitted
        code, updates = await _ask(address, "WatchTask", pb.WatchTaskRequest(task_id=submitted.task_id), ALICE)
        assert code is grpc.StatusCode.OK and updates[-1].status == pb.TASK_STATUS_FAILED
        code, requeued = await _ask(address, "RequeueDeadLetter", pb.DeadLetterRequest(task_id=submitted.task_id), ROOT)
        assert code is grpc.StatusCode.OK, requeued
        code, record = await _ask(address, "GetTask", pb.GetTaskRequest(task_id=requeued.task_id), ALICE)
        assert code is grpc.StatusCode.OK and record.owner == "client/alice"
        code, _ = await _ask(address, "GetTask", pb.GetTaskRequest(task_id=requeued.task_id), BOB)
        assert code is grpc.StatusCode.NOT_FOUND
