"""Zombie detection: a worker that still heartbeats but cannot take tasks is SUSPECT and gets no work."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from grpc import aio

from tests.conftest import eventually
from tests.orchestrator.manual_clock import ManualClock
from tests.orchestrator.unreachable import channel_down_while
from worker_abstraction import AsyncOrchestrator, RegistryServer, TaskStatus, WorkerInfo, WorkerState
from worker_abstraction.cli.main import build_parser
from worker_abstraction.orchestrator.core.health import WorkerStanding
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.orchestrator.edge.link import WorkerLinks

pytestmark = pytest.mark.timeout(30)


async def test_a_worker_whose_service_died_but_still_heartbeats_is_suspect_and_gets_no_tasks(
    registry: RegistryServer, start_worker: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    zombie, healthy = await start_worker(), await start_worker()
    dead = asyncio.Event()  # once set, the zombie's task service does not answer; its heartbeats go on

    def channel(address: str) -> aio.Channel:
        return channel_down_while(address, dead) if address == zombie.address else aio.insecure_channel(address)

    links = WorkerLinks(fast_path=False, channel_factory=channel)
    async with OrchestratorServer(registry.address, port=0, links=links) as server:
        orchestrator = server.orchestrator
        await orchestrator.wait_for_workers("echo", count=2, timeout_seconds=5)
        dead.set()

        handles = [await orchestrator.execute_task("echo", {"text": str(i)}) for i in range(6)]
        assert [await h.result(timeout_seconds=10) for h in handles] == [{"text": str(i)} for i in range(6)]
        assert {h.worker_id for h in handles} == {healthy.worker_id}
        standing = {h.worker.worker_id: h for h in await orchestrator.worker_health()}
        assert standing[zombie.worker_id].state is WorkerState.SUSPECT
        assert "task dispatch failed" in standing[zombie.worker_id].state_reason
        assert standing[healthy.worker_id].state is WorkerState.ACTIVE
        assert await registry.registry.get(zombie.worker_id)  # the registry still lists it: heartbeats arrive

        later = [await orchestrator.execute_task("echo", {"text": "x"}) for _ in range(4)]
        for handle in later:
            await handle.result(timeout_seconds=10)
        assert {h.worker_id for h in later} == {healthy.worker_id}
        assert all(a.worker_id == healthy.worker_id for h in later for a in h.attempts)

        args = build_parser().parse_args(["workers", "--orchestrator", server.address, "--json"])
        assert await args.run(args) == 0
        listing = {w["worker_id"]: w for w in json.loads(capsys.readouterr().out)}
        assert listing[zombie.worker_id]["state"] == "SUSPECT"
        assert listing[healthy.worker_id]["state"] == "ACTIVE"
        assert {w["circuit"] for w in listing.values()} <= {"closed", "open", "half-open"}
        assert listing[healthy.worker_id]["in_flight"] == 0

        args = build_parser().parse_args(["workers", "--orchestrator", server.address])
        assert await args.run(args) == 0
        header = capsys.readouterr().out.splitlines()[0].split()
        assert header[-4:] == ["CIRCUIT", "IN", "FLIGHT", "STATE"]


async def test_a_suspect_that_answers_its_probe_is_active_again(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    down = asyncio.Event()  # while set, the worker's address swallows every call
    links = WorkerLinks(fast_path=False, channel_factory=lambda address: channel_down_while(address, down))
    async with AsyncOrchestrator(registry.address, links=links) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)

        async def standing() -> WorkerState:
            [health] = await orchestrator.worker_health()
            return health.state

        down.set()
        first = await orchestrator.execute_task("echo", {"text": "first"})
        await eventually(lambda: _is(standing(), WorkerState.SUSPECT), what="a failed dispatch makes it suspect")
        [health] = await orchestrator.worker_health()
        assert "task dispatch failed" in health.state_reason
        second = await orchestrator.execute_task("echo", {"text": "waits"})
        assert not second.worker_id  # queued, not sent to a suspect
        down.clear()
        await eventually(lambda: _is(standing(), WorkerState.ACTIVE), what="the probe clears the suspicion")
        assert await first.result(timeout_seconds=5) == {"text": "first"}
        assert await second.result(timeout_seconds=5) == {"text": "waits"}
        assert [a.status for a in first.attempts][-1] is TaskStatus.COMPLETED


async def _is(state: Awaitable[WorkerState], expected: WorkerState) -> bool:
    return await state is expected


async def test_standing_proves_new_workers_suspects_failing_ones_and_honours_the_registry() -> None:
    answers: dict[str, str | None] = {"w": None}
    clock = ManualClock()

    async def probe(worker: WorkerInfo) -> str | None:
        return answers[worker.worker_id]

    standing = WorkerStanding(probe, clock)
    recovered: list[str] = []
    standing.on_recovered.append(lambda: recovered.append("pump"))
    worker = WorkerInfo(worker_id="w", name="w", address="127.0.0.1:1")
    assert not standing.allows(worker, clock.now())  # unknown: not proven
    standing.joined(worker)
    await eventually(lambda: standing.usable(worker), what="the first probe proves it")
    assert standing.allows(worker, clock.now()) and recovered
    late = replace(worker, state=WorkerState.SUSPECT, state_reason="no heartbeat for 1.4s")
    assert not standing.allows(late, clock.now())
    assert standing.state(late) == (WorkerState.SUSPECT, "registry: no heartbeat for 1.4s")

    answers["w"] = "probe refused: connection refused"
    standing.failed("w", "task stream died")
    assert not standing.allows(worker, clock.now())
    assert standing.state(worker) == (WorkerState.SUSPECT, "task stream died")
    clock.advance(1.0)  # the first re-probe fails: it stays suspect, and the next one comes later
    await eventually(lambda: standing.state(worker)[1] == "probe refused: connection refused", what="re-probed")
    answers["w"] = None
    clock.advance(1.0)
    assert not standing.usable(worker)  # the interval doubled after a failed probe
    clock.advance(1.0)
    await eventually(lambda: standing.usable(worker), what="the probe clears the suspicion")
    standing.left("w")
    assert not standing.allows(worker, clock.now())
    await standing.aclose()
