"""Zombie detection: a worker that still heartbeats but cannot take tasks is SUSPECT and gets no work."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from tests.conftest import eventually
from worker_abstraction import AsyncOrchestrator, RegistryServer, WorkerInfo, WorkerState
from worker_abstraction.cli.main import build_parser
from worker_abstraction.orchestrator.health import HealthWatch
from worker_abstraction.orchestrator.service import OrchestratorServer

pytestmark = pytest.mark.timeout(30)


async def test_a_worker_whose_service_died_but_still_heartbeats_is_suspect_and_gets_no_tasks(
    registry: RegistryServer, start_worker: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    zombie, healthy = await start_worker(), await start_worker()
    async with OrchestratorServer(registry.address, port=0) as server:
        orchestrator = server.orchestrator
        await orchestrator.wait_for_workers("echo", count=2, timeout_seconds=5)
        await zombie._server.stop(None)  # its task service is gone; its heartbeats go on

        handles = [await orchestrator.execute_task("echo", {"text": str(i)}) for i in range(6)]
        assert [await h.result(timeout_seconds=10) for h in handles] == [{"text": str(i)} for i in range(6)]
        assert {h.worker_id for h in handles} == {healthy.worker_id}
        standing = {h.worker.worker_id: h for h in orchestrator.worker_health()}
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
    worker = await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("echo", timeout_seconds=5)
        orchestrator._health.suspect(worker.worker_id, "lost a task")

        def standing() -> WorkerState:
            [health] = orchestrator.worker_health()
            return health.state

        assert standing() is WorkerState.SUSPECT
        handle = await orchestrator.execute_task("echo", {"text": "waits"})
        assert not handle.worker_id  # queued, not sent to a suspect
        await eventually(lambda: standing() is WorkerState.ACTIVE, what="the probe clears the suspicion")
        assert await handle.result(timeout_seconds=5) == {"text": "waits"}


async def test_a_worker_the_registry_suspects_gets_no_new_tasks() -> None:
    probed: list[str] = []

    async def probe(worker: WorkerInfo) -> bool:
        probed.append(worker.worker_id)
        return True

    watch = HealthWatch(probe, lambda worker_id: None)
    worker = WorkerInfo(worker_id="w", name="w", address="127.0.0.1:1")
    late = replace(worker, state=WorkerState.SUSPECT, state_reason="no heartbeat for 1.4s")
    assert watch.allows(worker) and not watch.allows(late)
    assert watch.state(late) == (WorkerState.SUSPECT, "registry: no heartbeat for 1.4s")
    watch.suspect("w", "task stream died")
    assert not watch.allows(worker) and watch.state(worker) == (WorkerState.SUSPECT, "task stream died")
    watch.forget("w")
    assert watch.allows(worker)
    await watch.aclose()
