"""The scheduler in one process: queueing, priorities, aging, fairness, bounds, affinity, validation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import grpc
import pytest
from grpc import aio
from pydantic import Field

from tests.conftest import GATES, Gates, eventually
from worker_abstraction import (
    AsyncOrchestrator,
    BaseWorker,
    InvalidParametersError,
    NoWorkerError,
    QueueFullError,
    RegistryServer,
    TaskContext,
    TaskStatus,
    TaskTimeoutError,
    capability,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc


class OneSlot(BaseWorker):
    """Runs one task at a time and writes down the order it ran them in."""

    max_concurrent_tasks = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ran: list[str] = []

    @capability
    async def step(self, label: str, gate: str = "") -> str:
        """Record `label`; wait for `gate` first when one is named."""
        if gate:
            await GATES.async_gate(gate).wait()
        self.ran.append(label)
        return label

    @capability(required_tags=("gpu",))
    async def render(self) -> str:
        return "rendered"

    @capability
    async def strict(
        self,
        mode: Literal["fast", "slow"],
        count: Annotated[int, Field(ge=1, le=10)],
        ctx: TaskContext,
        note: str = "",
    ) -> int:
        return count


@pytest.fixture
async def orchestrator(registry: RegistryServer) -> AsyncIterator[AsyncOrchestrator]:
    async with AsyncOrchestrator(registry.address, aging_seconds=30.0, max_queued=50) as orchestrator:
        yield orchestrator


async def _blocked(orchestrator: AsyncOrchestrator, gate: str, **options: Any) -> Any:
    """Occupy the only slot until the gate opens (returns once the worker runs it)."""
    handle = await orchestrator.execute_task("step", {"label": "blocker", "gate": gate}, **options)
    await eventually(lambda: handle.status is TaskStatus.RUNNING, what="the blocker runs")
    return handle


async def test_busy_workers_queue_tasks_instead_of_refusing(
    orchestrator: AsyncOrchestrator, start_worker: Callable[..., Any], gates: Gates
) -> None:
    worker = await start_worker(OneSlot)
    await orchestrator.wait_for_workers("step", timeout_seconds=5)
    blocker = await _blocked(orchestrator, "g")
    queued = [await orchestrator.execute_task("step", {"label": str(i)}) for i in range(3)]
    assert all(h.status is TaskStatus.PENDING and h.worker_id == "" for h in queued)
    assert await orchestrator.queue_depths() == {"step": {0: 3}}
    assert worker.tasks_received == 1  # nothing oversubscribed the single slot
    gates.open("g")
    assert [await h.result(timeout_seconds=5) for h in (blocker, *queued)] == ["blocker", "0", "1", "2"]
    assert worker.peak_load == 1 and await orchestrator.queue_depths() == {}


async def test_higher_priority_runs_first_and_fifo_within_a_priority(
    orchestrator: AsyncOrchestrator, start_worker: Callable[..., Any], gates: Gates
) -> None:
    worker = await start_worker(OneSlot)
    await orchestrator.wait_for_workers("step", timeout_seconds=5)
    blocker = await _blocked(orchestrator, "g")
    handles = [
        await orchestrator.execute_task("step", {"label": label}, priority=priority)
        for label, priority in [("low-1", 0), ("high-1", 9), ("mid", 5), ("low-2", 0), ("high-2", 9)]
    ]
    gates.open("g")
    await asyncio.gather(blocker.result(timeout_seconds=5), *(h.result(timeout_seconds=5) for h in handles))
    assert worker.ran == ["blocker", "high-1", "high-2", "mid", "low-1", "low-2"]


async def test_low_priority_still_runs_under_a_steady_stream_of_high_priority(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    worker = await start_worker(OneSlot)
    async with AsyncOrchestrator(registry.address, aging_seconds=0.02) as orchestrator:
        await orchestrator.wait_for_workers("step", timeout_seconds=5)
        high = [await orchestrator.execute_task("step", {"label": "high"}, priority=5) for _ in range(3)]
        low = await orchestrator.execute_task("step", {"label": "low"}, priority=0)
        async with asyncio.timeout(10):
            while not low.done():  # keep three high-priority tasks waiting at all times
                high = [h for h in high if not h.done()]
                while len(high) < 3:
                    high.append(await orchestrator.execute_task("step", {"label": "high"}, priority=5))
                await asyncio.wait([asyncio.ensure_future(h.wait()) for h in high], return_when="FIRST_COMPLETED")
        assert await low.result() == "low"
        assert worker.ran.count("high") >= 3  # high priority did go first for a while
        await asyncio.gather(*(h.wait(timeout_seconds=5) for h in high))


async def test_one_keys_burst_does_not_starve_another_keys_single_task(
    orchestrator: AsyncOrchestrator, start_worker: Callable[..., Any], gates: Gates
) -> None:
    worker = await start_worker(OneSlot)
    await orchestrator.wait_for_workers("step", timeout_seconds=5)
    blocker = await _blocked(orchestrator, "g")
    burst = [await orchestrator.execute_task("step", {"label": "a"}, fairness_key="tenant-a") for _ in range(40)]
    single = await orchestrator.execute_task("step", {"label": "b"}, fairness_key="tenant-b")
    gates.open("g")
    await asyncio.gather(blocker.wait(), single.wait(), *(h.wait() for h in burst))
    assert worker.ran.index("b") <= 2  # b's task ran right after one of a's, not after all forty


async def test_full_queue_refuses_new_tasks_and_keeps_every_accepted_one(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker(OneSlot)
    async with AsyncOrchestrator(registry.address, max_queued=3) as orchestrator:
        await orchestrator.wait_for_workers("step", timeout_seconds=5)
        blocker = await _blocked(orchestrator, "g")
        accepted = [await orchestrator.execute_task("step", {"label": str(i)}) for i in range(3)]
        with pytest.raises(QueueFullError):
            await orchestrator.execute_task("step", {"label": "one too many"})
        gates.open("g")
        assert [await h.result(timeout_seconds=5) for h in (blocker, *accepted)] == ["blocker", "0", "1", "2"]


async def test_per_capability_bound(registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates) -> None:
    await start_worker(OneSlot)
    async with AsyncOrchestrator(registry.address, max_queued_per_capability={"step": 1}) as orchestrator:
        await orchestrator.wait_for_workers("step", timeout_seconds=5)
        blocker = await _blocked(orchestrator, "g")
        waiting = await orchestrator.execute_task("step", {"label": "waits"})
        with pytest.raises(QueueFullError) as full:
            await orchestrator.execute_task("step", {"label": "refused"})
        assert "step" in str(full.value)
        gates.open("g")
        assert await waiting.result(timeout_seconds=5) == "waits"
        await blocker.wait(timeout_seconds=5)


async def test_tags_and_pins_route_and_impossible_requirements_name_themselves(
    orchestrator: AsyncOrchestrator, start_worker: Callable[..., Any]
) -> None:
    gpu = await start_worker(OneSlot, tags=("GPU", "big"))
    cpu = await start_worker(OneSlot, tags=("cpu",))
    await orchestrator.wait_for_workers("step", count=2, timeout_seconds=5)
    for _ in range(3):
        tagged = await orchestrator.execute_task("step", {"label": "x"}, required_tags=["gpu"])
        pinned = await orchestrator.execute_task("step", {"label": "x"}, worker_id=cpu.worker_id)
        await tagged.wait(timeout_seconds=5)
        await pinned.wait(timeout_seconds=5)
        assert tagged.worker_id == gpu.worker_id and pinned.worker_id == cpu.worker_id
    preferred = await orchestrator.execute_task("step", {"label": "x"}, preferred_tags=["cpu"])
    await preferred.wait(timeout_seconds=5)
    assert preferred.worker_id == cpu.worker_id
    rendered = await orchestrator.execute_task("render", {})
    await rendered.wait(timeout_seconds=5)
    assert rendered.worker_id == gpu.worker_id  # the capability needs gpu
    with pytest.raises(NoWorkerError) as impossible:
        await orchestrator.execute_task("step", {"label": "x"}, required_tags=["tpu"])
    assert "tpu" in str(impossible.value) and "gpu" in str(impossible.value).lower()  # needed, and offered
    with pytest.raises(NoWorkerError) as unknown_pin:
        await orchestrator.execute_task("step", {"label": "x"}, worker_id="nobody")
    assert "nobody" in str(unknown_pin.value)


async def test_bad_parameters_fail_at_the_caller_and_never_reach_a_worker(
    orchestrator: AsyncOrchestrator, start_worker: Callable[..., Any]
) -> None:
    worker = await start_worker(OneSlot)
    await orchestrator.wait_for_workers("strict", timeout_seconds=5)
    cases = {
        "missing": ({"mode": "fast"}, ["'count'"]),
        "extra": ({"mode": "fast", "count": 1, "colour": "red"}, ["'colour'"]),
        "mistyped": ({"mode": "fast", "count": "3"}, ["'count'"]),
        "out of range": ({"mode": "fast", "count": 11}, ["'count'", "10"]),
        "not in enum": ({"mode": "warp", "count": 1}, ["'mode'", "warp"]),
        "everything": ({"count": 0, "note": 5, "x": 1}, ["'mode'", "'count'", "'note'", "'x'"]),
    }
    for name, (params, mentions) in cases.items():
        with pytest.raises(InvalidParametersError) as invalid:
            await orchestrator.execute_task("strict", params)
        message = str(invalid.value)
        assert all(m in message for m in mentions), (name, message)
    assert len(invalid.value.problems) == 4
    assert worker.tasks_received == 0
    assert await (await orchestrator.execute_task("strict", {"mode": "slow", "count": 3})).result() == 3


async def test_execute_many_yields_tasks_as_they_finish(
    orchestrator: AsyncOrchestrator, start_worker: Callable[..., Any]
) -> None:
    await start_worker(OneSlot)
    await start_worker(OneSlot)
    await orchestrator.wait_for_workers("step", count=2, timeout_seconds=5)
    labels = [str(i) for i in range(30)]
    finished = [h async for h in orchestrator.execute_many("step", ({"label": x} for x in labels), max_pending=4)]
    assert sorted(h.params["label"] for h in finished) == sorted(labels)
    assert all(h.status is TaskStatus.COMPLETED for h in finished)


async def test_worker_refuses_past_its_slots_with_resource_exhausted(
    start_worker: Callable[..., Any], gates: Gates
) -> None:
    worker = await start_worker(OneSlot)
    async with aio.insecure_channel(worker.address) as channel:
        stub = pb_grpc.WorkerServiceStub(channel)

        def task(task_id: str) -> pb.ExecuteTaskRequest:
            params = [pb.TaskParameter(key="label", value_json='"x"'), pb.TaskParameter(key="gate", value_json='"s"')]
            return pb.ExecuteTaskRequest(task=pb.Task(task_id=task_id, capability_name="step", parameters=params))

        assert (await stub.ExecuteTask(task("first"))).accepted
        with pytest.raises(aio.AioRpcError) as refused:
            await stub.ExecuteTask(task("second"))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        gates.open("s")


async def test_tasks_may_wait_for_a_worker_that_does_not_exist_yet_when_asked_to(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    async with AsyncOrchestrator(registry.address) as strict:
        with pytest.raises(NoWorkerError):  # the seed's behaviour, by default
            await strict.execute_task("echo", {"text": "early"})
    async with AsyncOrchestrator(registry.address, queue_without_workers=True) as patient:
        early = await patient.execute_task("echo", {"text": "early"})
        expiring = await patient.execute_task("never_offered", {}, queue_timeout_seconds=0.2)
        assert early.status is TaskStatus.PENDING and await patient.queue_depths() == {
            "echo": {0: 1},
            "never_offered": {0: 1},
        }
        with pytest.raises(TaskTimeoutError) as expired:
            await expiring.result(timeout_seconds=5)
        assert expired.value.in_queue
        await start_worker()  # the worker comes, and the waiting task runs
        assert await early.result(timeout_seconds=5) == {"text": "early"}
