"""Lifecycle defects found by trying the daemon as a new user would, each pinned by a test.

Every task reaches exactly one terminal state, whatever the worker is (seed-built, silent, gone, not a
worker at all) and whatever the caller sends; no submission waits on a worker; attempt numbers are never
reused, not even across a restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.conftest import ToolWorker, eventually
from tests.orchestrator.manual_clock import ManualClock
from tests.orchestrator.scripted_worker import ScriptedWorker, result
from worker_abstraction import (
    AsyncOrchestrator,
    CapabilitySpec,
    InvalidTaskOptionsError,
    RegistryClient,
    RegistryServer,
    RemoteOrchestrator,
    RetryPolicy,
    TaskCanceledError,
    TaskContext,
    TaskExistsError,
    TaskFailedError,
    TaskOptions,
    TaskStatus,
    TaskTimeoutError,
    WorkerInfo,
    capability,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.cli.main import build_parser
from worker_abstraction.codec import encode_params
from worker_abstraction.orchestrator.core.facts import ATTEMPT_BLOCK
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.orchestrator.homes.journal import StoreJournal
from worker_abstraction.stores.sqlite import SqliteTaskStore
from worker_abstraction.types import TaskSpec

pytestmark = pytest.mark.timeout(60)


class AttemptWorker(ToolWorker):
    @capability
    async def which_attempt(self, ctx: TaskContext) -> int:
        """The attempt number the handler was told."""
        return ctx.attempt


async def _never_finishes(task: pb.Task) -> AsyncIterator[pb.TaskResult]:
    yield result(task, TaskStatus.RUNNING)
    await asyncio.Event().wait()  # a seed worker that neither ends the task nor enforces its timeout


# ---- a worker that cannot cancel; a worker that overruns ---------------------------------------------------


async def test_cancel_of_a_task_on_a_worker_without_cancel_ends_it_here_and_says_so(
    registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = await ScriptedWorker("seed", "job", _never_finishes).start(registry.address)
    try:
        async with OrchestratorServer(registry.address, port=0) as server, RemoteOrchestrator(server.address) as remote:
            await remote.wait_for_workers("job", timeout_seconds=5)
            handle = await remote.execute_task("job", {})
            await eventually(lambda: handle.status is TaskStatus.RUNNING, what="it runs")
            args = build_parser().parse_args(["cancel", handle.task_id, "--orchestrator", server.address])
            assert await args.run(args) == 0
            said = capsys.readouterr().out
            assert "cannot cancel tasks" in said and "late result is ignored" in said
            final = await handle.wait(timeout_seconds=5)
            assert final.status is TaskStatus.CANCELED
            with pytest.raises(TaskCanceledError):
                await handle.result()
            assert (await remote.task(handle.task_id)).status is TaskStatus.CANCELED
            assert await remote.cancel(handle.task_id) is False  # it is over: nothing is resent
    finally:
        await worker.stop()


async def test_an_overrun_on_a_worker_that_enforces_no_timeout_is_a_timeout_embedded_and_through_the_daemon(
    registry: RegistryServer,
) -> None:
    worker = await ScriptedWorker("seed", "job", _never_finishes).start(registry.address)
    try:
        async with OrchestratorServer(registry.address, port=0) as server, RemoteOrchestrator(server.address) as remote:
            await remote.wait_for_workers("job", timeout_seconds=5)
            handles = [
                await server.orchestrator.execute_task("job", {}, timeout_seconds=1),
                await remote.execute_task("job", {}, timeout_seconds=1),
            ]
            for handle in handles:
                with pytest.raises(TaskTimeoutError) as overran:
                    await handle.result(timeout_seconds=10)
                assert overran.value.timeout_seconds == 1 and not overran.value.in_queue
    finally:
        await worker.stop()


# ---- submissions never wait on workers, and bad workers cannot swallow tasks ---------------------------------


async def test_a_submission_is_answered_at_once_when_the_only_capable_worker_is_unreachable(
    registry: RegistryServer,
) -> None:
    dead = WorkerInfo(worker_id="dead", name="dead", address="127.0.0.1:9", capabilities=(CapabilitySpec("job"),))
    client = RegistryClient(registry.address)
    await client.register(dead)
    try:
        async with OrchestratorServer(registry.address, port=0) as server, RemoteOrchestrator(server.address) as remote:
            await eventually(_knows(remote, "dead"), what="the daemon sees the registration")
            started = time.monotonic()
            handle = await remote.execute_task("job", {}, queue_timeout_seconds=0.5)
            assert time.monotonic() - started < 1.0
            assert handle.status is TaskStatus.PENDING and not handle.worker_id
            with pytest.raises(TaskTimeoutError) as expired:
                await handle.result(timeout_seconds=5)
            assert expired.value.in_queue
    finally:
        await client.aclose()


def _knows(remote: RemoteOrchestrator, worker_id: str) -> Callable[[], Any]:
    async def check() -> bool:
        return any(w.worker_id == worker_id for w in await remote.workers())

    return check


async def test_thousands_of_dead_registrations_do_not_hold_up_a_real_task(start_worker: Callable[..., Any]) -> None:
    fakes = 5000
    async with RegistryServer(port=0, ttl_seconds=120) as registry:
        real = await start_worker(registry=registry.address)  # registered first: probed after every fake
        client = RegistryClient(registry.address)
        try:
            dead = [
                WorkerInfo(worker_id=f"dead-{i}", name="dead", address=f"127.0.0.1:{9 + i % 2}",
                           capabilities=(CapabilitySpec("echo", parameters=real.capability_specs()[0].parameters),))
                for i in range(fakes)
            ]  # fmt: skip
            for chunk in range(0, fakes, 250):
                await asyncio.gather(*(client.register(w) for w in dead[chunk : chunk + 250]))
            async with AsyncOrchestrator(registry.address) as orchestrator:
                started = time.monotonic()
                handle = await orchestrator.execute_task("echo", {"text": "real"})
                assert await handle.result(timeout_seconds=20) == {"text": "real"}
                took = time.monotonic() - started
                print(f"\nthe real task finished {took:.2f}s after submission, behind {fakes} dead registrations")
                assert took < 10.0  # it used to wait ~26 s behind 5,000 of them
                assert {a.worker_id for a in handle.attempts} == {real.worker_id}
        finally:
            await client.aclose()


async def test_a_registration_pointing_at_another_kind_of_server_never_fails_a_task(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    real = await start_worker()
    # The registry's own address: a gRPC server, but not a worker (UNIMPLEMENTED for WorkerService).
    imposter = WorkerInfo(
        worker_id="imposter", name="x", address=registry.address, capabilities=(CapabilitySpec("echo"),)
    )
    client = RegistryClient(registry.address)
    await client.register(imposter)
    try:
        async with AsyncOrchestrator(registry.address) as orchestrator:
            await orchestrator.wait_for_workers("echo", timeout_seconds=5)
            handles = [await orchestrator.execute_task("echo", {"text": str(i)}) for i in range(10)]
            assert [await h.result(timeout_seconds=10) for h in handles] == [{"text": str(i)} for i in range(10)]
            assert {a.worker_id for h in handles for a in h.attempts} == {real.worker_id}
    finally:
        await client.aclose()


# ---- ids and options that could wedge the engine -------------------------------------------------------------


async def test_a_finished_task_id_is_never_reused(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    await start_worker()
    store = await SqliteTaskStore(tmp_path / "tasks.db").open()
    try:
        async with OrchestratorServer(registry.address, port=0) as server, RemoteOrchestrator(server.address) as remote:
            await remote.wait_for_workers("echo", timeout_seconds=5)
            first = await remote.execute_task("echo", {"text": "first"}, task_id="order-1")
            assert await first.result(timeout_seconds=5) == {"text": "first"}
            with pytest.raises(TaskExistsError) as taken:
                await remote.execute_task("echo", {"text": "second"}, task_id="order-1")
            assert taken.value.task_id == "order-1"
            async with aio.insecure_channel(server.address) as channel:
                request = pb.SubmitTaskRequest(task=pb.Task(task_id="order-1", capability_name="echo"))
                with pytest.raises(aio.AioRpcError) as raw:
                    await pb_grpc.OrchestratorServiceStub(channel).SubmitTask(request)
                assert raw.value.code() is grpc.StatusCode.ALREADY_EXISTS
        async with AsyncOrchestrator(registry.address, task_store=store) as first_life:
            await first_life.wait_for_workers("echo", timeout_seconds=5)
            await (await first_life.execute_task("echo", {"text": "kept"}, task_id="order-2")).result(timeout_seconds=5)
        async with AsyncOrchestrator(registry.address, task_store=store) as second_life:
            with pytest.raises(TaskExistsError):  # remembered across a restart, through the store
                await second_life.execute_task("echo", {"text": "again"}, task_id="order-2")
    finally:
        await store.close()


async def test_out_of_range_options_are_refused_with_every_problem_named(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    async with OrchestratorServer(registry.address, port=0) as server:
        await server.orchestrator.wait_for_workers("echo", timeout_seconds=5)
        with pytest.raises(InvalidTaskOptionsError) as refused:
            await server.orchestrator.execute_task("echo", {"text": "x"}, timeout_seconds=8.6e13, priority=2**40)
        assert len(refused.value.problems) == 2
        async with aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            task = pb.Task(capability_name="echo", timeout_seconds=86_400_000_000_000)
            task.parameters.add(key="text", value_json='"x"')
            with pytest.raises(aio.AioRpcError) as raw:
                await stub.SubmitTask(pb.SubmitTaskRequest(task=task))
            assert raw.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "timeout_seconds" in raw.value.details()
            for bad in (float("nan"), -1.0):
                request = pb.SubmitTaskRequest(task=task, exact_timeout_seconds=bad)
                request.task.timeout_seconds = 5
                with pytest.raises(aio.AioRpcError) as raw:
                    await stub.SubmitTask(request)
                assert raw.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert await server.orchestrator.tasks() == []  # nothing was accepted


# ---- attempt numbers are stored before they are sent, and never reused ----------------------------------------


class HoldReservations(SqliteTaskStore):
    """A store whose attempt reservations wait for the test."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = asyncio.Event()
        self.reserving = asyncio.Event()
        self.reserved: list[int] = []

    async def reserve(self, task_id: str, up_to: int) -> None:
        self.reserving.set()
        await self.release.wait()
        await super().reserve(task_id, up_to)
        self.reserved.append(up_to)


class Failing(ToolWorker):
    @capability
    async def fail_with_attempt(self, ctx: TaskContext) -> None:
        """Always fails, naming its attempt."""
        raise RuntimeError(f"attempt {ctx.attempt}")


async def test_attempt_numbers_are_reserved_in_the_store_before_they_are_sent(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    worker = await start_worker(Failing)
    store = await HoldReservations(tmp_path / "tasks.db").open()
    policy = RetryPolicy(max_attempts=5, initial_backoff_seconds=0.01, retry_task_errors=True)
    try:
        async with AsyncOrchestrator(registry.address, task_store=store, retry_policy=policy) as orchestrator:
            await orchestrator.wait_for_workers("fail_with_attempt", timeout_seconds=5)
            handle = await orchestrator.execute_task("fail_with_attempt", {})
            async with asyncio.timeout(5):
                await store.reserving.wait()  # acceptance reserved attempts 1-3; attempt 4 needs more
            assert worker.tasks_received == ATTEMPT_BLOCK  # nothing past the reservation left
            store.release.set()
            with pytest.raises(TaskFailedError) as failed:
                await handle.result(timeout_seconds=10)
            assert failed.value.error_message == "RuntimeError: attempt 5"
            assert store.reserved == [2 * ATTEMPT_BLOCK] and worker.tasks_received == 5
    finally:
        await store.close()


async def _stored(store: SqliteTaskStore, task_id: str, capability: str) -> StoreJournal:
    journal = StoreJournal(store)
    spec = TaskSpec(task_id, capability, {}, encode_params({}), TaskOptions(task_id=task_id), time.time_ns())
    await journal.accepted(spec)
    return journal


async def test_a_resumed_task_never_reuses_an_attempt_number(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    await start_worker(AttemptWorker)
    store = await SqliteTaskStore(tmp_path / "tasks.db").open()
    try:
        # Before a crash: attempt 3 was sent somewhere, then the task went back to the queue.
        journal = await _stored(store, "resumed", "which_attempt")
        journal.dispatched("resumed", "gone", "127.0.0.1:9", 3)
        journal.requeued("resumed", 3, 0)
        await journal.drain()
        async with AsyncOrchestrator(registry.address, task_store=store) as orchestrator:
            handle = await orchestrator.watch("resumed")
            assert await handle.result(timeout_seconds=10) == 4
    finally:
        await store.close()


async def test_a_resumed_task_whose_worker_forgot_it_runs_again_instead_of_waiting_forever(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    worker = await start_worker(AttemptWorker)
    store = await SqliteTaskStore(tmp_path / "tasks.db").open()
    try:
        # Before a crash: attempt 1 was stored as sent to a live worker that never got it.
        journal = await _stored(store, "forgotten", "which_attempt")
        sent = datetime.now(UTC)
        journal.dispatched("forgotten", worker.worker_id, worker.address, 1)
        await journal.drain()
        restarted = datetime.now(UTC)
        async with AsyncOrchestrator(registry.address, task_store=store) as orchestrator:
            handle = await orchestrator.watch("forgotten")
            # Any number up to the reservation may have been sent before the crash: the next is past it.
            assert await handle.result(timeout_seconds=10) == ATTEMPT_BLOCK + 1
            [lost, ran] = handle.attempts
            assert lost.status is TaskStatus.FAILED and "no longer knows the task" in lost.error_message
            assert ran.status is TaskStatus.COMPLETED
            # The attempt sent before the restart started then, not when the daemon came back.
            assert lost.started_at is not None and sent <= lost.started_at <= restarted
    finally:
        await store.close()


# ---- what `wa workers --orchestrator` shows -------------------------------------------------------------------


async def test_the_daemons_view_of_workers_shows_fresh_heartbeats(
    registry: RegistryServer, start_worker: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    worker = await start_worker()  # heartbeats every 0.1 s, with a load that never changes
    async with OrchestratorServer(registry.address, port=0) as server:
        await server.orchestrator.wait_for_workers("echo", timeout_seconds=5)
        joined = time.time()

        async def heartbeats_went_on() -> bool:
            record = await registry.registry.get(worker.worker_id)
            return record.last_heartbeat is not None and record.last_heartbeat.timestamp() > joined + 1.0

        await eventually(heartbeats_went_on, what="a second of heartbeats")
        args = build_parser().parse_args(["workers", "--orchestrator", server.address, "--json"])
        assert await args.run(args) == 0
        [shown] = json.loads(capsys.readouterr().out)
        age = time.time() - datetime.fromisoformat(shown["last_heartbeat"]).timestamp()
        assert age < 0.8, f"LAST HEARTBEAT {age:.2f}s old for a worker that beats every 0.1s"


async def test_deadlines_follow_the_injected_clock(registry: RegistryServer) -> None:
    worker = await ScriptedWorker("seed", "job", _never_finishes).start(registry.address)
    clock = ManualClock()
    try:
        async with AsyncOrchestrator(registry.address, clock=clock) as orchestrator:
            await orchestrator.wait_for_workers("job", timeout_seconds=5)
            handle = await orchestrator.execute_task("job", {}, timeout_seconds=600)
            await eventually(lambda: handle.status is TaskStatus.RUNNING, what="it runs")
            clock.advance(600)
            assert not handle.done()  # the worker gets its own deadline first, and a little slack
            clock.advance(2.5)  # past the slack, before the suspect's first re-probe
            with pytest.raises(TaskTimeoutError):
                await handle.result(timeout_seconds=1)  # ten minutes passed, for the orchestrator
            [health] = await orchestrator.worker_health()
            assert health.state_reason == "let a task pass its deadline without a word"
    finally:
        await worker.stop()
