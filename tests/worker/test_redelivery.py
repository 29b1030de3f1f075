"""A task id the worker already knows: the same delivery again, a new attempt, a new task, or a stale one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio

from tests.conftest import Gates
from tests.worker.conftest import EdgeCaseWorker, execute, log_of, make_task
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.worker.servicer import WorkerServicer
from worker_abstraction.worker.tasks import TaskTable


def _outcome(log: list[pb.TaskResult]) -> tuple[str, int, object]:
    final = log[-1]
    return pb.TaskStatus.Name(final.status), final.attempt, json.loads(final.output_json or "null")


@pytest.mark.parametrize("attempt", [0, 1])  # 0: what a seed-built orchestrator sends, every time
async def test_a_new_task_reusing_a_finished_id_runs_afresh(edge_stub: pb_grpc.WorkerServiceStub, attempt: int) -> None:
    first = make_task("echo", task_id="reused", attempt=attempt, text="first")
    assert (await execute(edge_stub, first)).accepted
    assert _outcome(await log_of(edge_stub, "reused")) == ("TASK_STATUS_COMPLETED", attempt, {"text": "first"})
    second = make_task("echo", task_id="reused", attempt=attempt, text="second")
    response = await execute(edge_stub, second)
    assert response.accepted and response.message == "accepted"
    log = await log_of(edge_stub, "reused")
    assert [u.sequence for u in log] == list(range(1, len(log) + 1))  # its own log, not the first one's
    assert _outcome(log) == ("TASK_STATUS_COMPLETED", attempt, {"text": "second"})


async def test_the_same_finished_delivery_again_is_answered_from_its_log_not_run_again(
    edge_stub: pb_grpc.WorkerServiceStub,
) -> None:
    task = make_task("echo", attempt=1, text="once")
    assert (await execute(edge_stub, task)).accepted
    before = await log_of(edge_stub, task.task_id)
    again = await execute(edge_stub, task)
    assert again.accepted and again.message == "already accepted"
    assert await log_of(edge_stub, task.task_id) == before


async def test_a_higher_attempt_of_a_completed_task_gets_its_outcome_without_running_again(
    edge_stub: pb_grpc.WorkerServiceStub,
) -> None:
    # Its orchestrator never heard the first attempt end (it restarted before): the handler does not run again.
    first = make_task("echo", task_id="retried", attempt=1, text="x")
    assert (await execute(edge_stub, first)).accepted
    await log_of(edge_stub, "retried")
    second = make_task("echo", task_id="retried", attempt=2, text="x")
    assert (await execute(edge_stub, second)).message == "already completed"
    log = await log_of(edge_stub, "retried")
    assert {u.attempt for u in log} == {2} and _outcome(log) == ("TASK_STATUS_COMPLETED", 2, {"text": "x"})
    assert [pb.TaskStatus.Name(u.status) for u in log][-2:] == ["TASK_STATUS_RUNNING", "TASK_STATUS_COMPLETED"]


async def test_a_higher_attempt_of_a_failed_task_runs_afresh(edge_stub: pb_grpc.WorkerServiceStub) -> None:
    first = make_task("explode", task_id="again", attempt=1, message="once")
    assert (await execute(edge_stub, first)).accepted
    assert _outcome(await log_of(edge_stub, "again"))[0] == "TASK_STATUS_FAILED"
    second = make_task("explode", task_id="again", attempt=2, message="once")
    assert (await execute(edge_stub, second)).message == "accepted"
    log = await log_of(edge_stub, "again")
    assert {u.attempt for u in log} == {2} and _outcome(log)[0] == "TASK_STATUS_FAILED"


@pytest.mark.parametrize(("attempt", "name"), [(2, "g"), (1, "other")])  # a newer attempt; another task
async def test_a_different_delivery_of_a_task_still_running_is_refused_as_resource_exhausted(
    edge_stub: pb_grpc.WorkerServiceStub, gates: Gates, attempt: int, name: str
) -> None:
    running = make_task("wait_for", task_id="busy", attempt=1, name="g")
    assert (await execute(edge_stub, running)).accepted
    with pytest.raises(aio.AioRpcError) as refused:
        await execute(edge_stub, make_task("wait_for", task_id="busy", attempt=attempt, name=name))
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    gates.open("g")
    assert _outcome(await log_of(edge_stub, "busy")) == ("TASK_STATUS_COMPLETED", 1, "g")  # the first ran on


async def test_on_the_task_channel_the_refusal_says_resource_exhausted(
    edge_stub: pb_grpc.WorkerServiceStub, gates: Gates
) -> None:
    requests: asyncio.Queue[pb.TaskChannelRequest | None] = asyncio.Queue()

    async def outgoing() -> AsyncIterator[pb.TaskChannelRequest]:
        while (request := await requests.get()) is not None:
            yield request

    channel = edge_stub.OpenTaskChannel(outgoing())
    acks: list[pb.ExecuteTaskResponse] = []
    async with asyncio.timeout(5):
        await channel.read()  # ready
        await requests.put(pb.TaskChannelRequest(tasks=[make_task("wait_for", task_id="chan", attempt=1, name="c")]))
        await requests.put(pb.TaskChannelRequest(tasks=[make_task("wait_for", task_id="chan", attempt=2, name="c")]))
        while len(acks) < 2:
            acks.extend((await channel.read()).acks)
        gates.open("c")
        await requests.put(None)
    assert [a.accepted for a in acks] == [True, False]
    assert acks[1].reject_reason == pb.REJECT_REASON_RESOURCE_EXHAUSTED
    assert "still running" in acks[1].message


@pytest.mark.parametrize("finished", [False, True])
async def test_an_older_attempt_than_one_already_seen_is_refused_as_a_stale_delivery(
    edge_stub: pb_grpc.WorkerServiceStub, gates: Gates, finished: bool
) -> None:
    newer = make_task("wait_for", task_id="stale", attempt=3, name="s")
    older = make_task("wait_for", task_id="stale", attempt=2, name="s")
    response = await _deliver_again(edge_stub, gates, newer, older, finished=finished)
    assert not response.accepted and response.reject_reason == pb.REJECT_REASON_INVALID_TASK
    assert {u.attempt for u in await log_of(edge_stub, "stale")} == {3}


async def _deliver_again(
    stub: pb_grpc.WorkerServiceStub, gates: Gates, known: pb.Task, again: pb.Task, *, finished: bool
) -> pb.ExecuteTaskResponse:
    """The answer to `again`, delivered while `known` (a wait_for task) runs or once it finished; `known` is
    let finish either way."""
    assert (await execute(stub, known)).accepted
    gate = json.loads(known.parameters[0].value_json)
    if finished:
        gates.open(gate)
        await log_of(stub, known.task_id)
    response = await execute(stub, again)
    gates.open(gate)
    return response


async def test_a_record_replaced_before_its_runner_was_cleaned_up_keeps_the_books_right(gates: Gates) -> None:
    # The window between a task's terminal update and its runner's clean-up is where a new delivery of the
    # same id can land; the replaced runner's clean-up must not count against, forget or orphan the new one.
    worker = EdgeCaseWorker(None, port=0, cancel_grace_seconds=0.1)
    await worker.start()
    try:
        servicer = worker._servicer
        assert isinstance(servicer, WorkerServicer)
        servicer.tasks = TaskTable(keep_finished=1)
        replaced: asyncio.Future[asyncio.Task[object]] = asyncio.get_running_loop().create_future()
        replacement = make_task("wait_for", task_id="twice", attempt=2, name="never")

        def replace_at_the_end(update: pb.TaskResult) -> None:
            if update.status == pb.TASK_STATUS_COMPLETED:
                runner = asyncio.current_task()  # the first task's runner, not cleaned up yet
                assert runner is not None
                replaced.set_result(runner)
                assert servicer.accept(replacement)[0].accepted

        response, record = servicer.accept(make_task("echo", task_id="twice", attempt=1, text="x"))
        assert response.accepted and record is not None
        record.listener = replace_at_the_end
        async with asyncio.timeout(5):
            await (await replaced)  # the first runner's clean-up has run once this returns
        async with aio.insecure_channel(worker.address) as channel:
            stub = pb_grpc.WorkerServiceStub(channel)
            other = make_task("echo", text="evicts the oldest finished task")
            assert (await execute(stub, other)).accepted
            await log_of(stub, other.task_id)
            assert worker.load == 1  # only the replacement runs
            canceled = await stub.CancelTask(pb.CancelTaskRequest(task_id="twice", reason="enough"))
            assert canceled.canceled
            log = await log_of(stub, "twice")  # still known, and stopped after the grace: its runner is not lost
        assert (log[-1].status, log[-1].attempt) == (pb.TASK_STATUS_CANCELED, 2)
        assert worker.load == 0
    finally:
        await worker.stop(grace_seconds=0.2)


@pytest.mark.parametrize("finished", [False, True])
async def test_an_invalid_delivery_under_a_known_id_is_refused_not_taken_for_the_known_one(
    edge_stub: pb_grpc.WorkerServiceStub, gates: Gates, finished: bool
) -> None:
    known = make_task("wait_for", task_id="known", attempt=1, name="k")
    hostile = make_task("wait_for", task_id="known", attempt=1, name="k")
    hostile.timeout_seconds = -(2**63)  # what the fuzzer sent: the same task otherwise
    refused = await _deliver_again(edge_stub, gates, known, hostile, finished=finished)
    assert not refused.accepted and refused.reject_reason == pb.REJECT_REASON_INVALID_TASK
    assert "timeout_seconds" in refused.message
    assert _outcome(await log_of(edge_stub, "known")) == ("TASK_STATUS_COMPLETED", 1, "k")
