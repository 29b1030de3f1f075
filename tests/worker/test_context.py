"""What a handler's TaskContext says about the task it runs."""

from __future__ import annotations

import json
import time

import pytest

from tests.worker.conftest import execute, log_of, make_task
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc


@pytest.mark.parametrize(("sent", "seen"), [(0, 1), (1, 1), (3, 3)])  # 0: a seed-built orchestrator's task
async def test_the_context_says_which_attempt_it_is_counting_from_one(
    edge_stub: pb_grpc.WorkerServiceStub, sent: int, seen: int
) -> None:
    task = make_task("describe_context", attempt=sent)
    assert (await execute(edge_stub, task)).accepted
    assert json.loads((await log_of(edge_stub, task.task_id))[-1].output_json)["attempt"] == seen


async def test_the_context_deadline_is_when_the_task_times_out(edge_stub: pb_grpc.WorkerServiceStub) -> None:
    before = time.time()
    task = make_task("describe_context", timeout_seconds=60)
    assert (await execute(edge_stub, task)).accepted
    deadline = json.loads((await log_of(edge_stub, task.task_id))[-1].output_json)["deadline"]
    after = time.time()
    assert before + 60 <= deadline <= after + 60
    untimed = make_task("describe_context")
    assert (await execute(edge_stub, untimed)).accepted
    assert json.loads((await log_of(edge_stub, untimed.task_id))[-1].output_json)["deadline"] is None
