"""Canceling from the caller: queued tasks never run, running ones end CANCELED, through the daemon too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Gates
from tests.orchestrator.test_scheduling import OneSlot
from worker_abstraction import (
    AsyncOrchestrator,
    Orchestrator,
    OrchestratorServer,
    RegistryServer,
    RemoteOrchestrator,
    TaskCanceledError,
    TaskNotFoundError,
    TaskStatus,
)
from worker_abstraction.cli.main import main as wa


async def test_canceling_a_queued_task_means_it_never_runs(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    worker = await start_worker(OneSlot)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("step", timeout_seconds=5)
        blocker = await orchestrator.execute_task("step", {"label": "blocker", "gate": "g"})
        queued = await orchestrator.execute_task("step", {"label": "never"})
        assert await queued.cancel("not needed")
        with pytest.raises(TaskCanceledError) as canceled:
            await queued.result(timeout_seconds=5)
        assert canceled.value.reason == "not needed"
        assert await orchestrator.queue_depths() == {}
        gates.open("g")
        await blocker.result(timeout_seconds=5)
        assert worker.tasks_received == 1 and "never" not in worker.ran
        assert not await queued.cancel()  # already over


async def test_canceling_a_running_task(registry: RegistryServer, start_worker: Callable[..., Any]) -> None:
    await start_worker()
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("cooperative", timeout_seconds=5)
        handle = await orchestrator.execute_task("cooperative", {})
        assert await orchestrator.cancel(handle.task_id, "stop it")
        with pytest.raises(TaskCanceledError):
            await handle.result(timeout_seconds=5)
        assert handle.updates[-1].status is TaskStatus.CANCELED
        with pytest.raises(TaskNotFoundError):
            await orchestrator.cancel("no-such-task")


async def test_sync_handle_cancel(registry: RegistryServer, start_worker: Callable[..., Any]) -> None:
    await start_worker()

    def script() -> TaskStatus:
        with Orchestrator(registry.address) as orchestrator:
            orchestrator.wait_for_workers("cooperative", timeout_seconds=5)
            handle = orchestrator.execute_task("cooperative", {})
            handle.cancel()
            return handle.wait(timeout_seconds=5).status

    assert await asyncio.to_thread(script) is TaskStatus.CANCELED


async def test_cancel_through_the_daemon_and_wa_cancel(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    async with OrchestratorServer(registry.address, port=0) as daemon:
        await daemon.orchestrator.wait_for_workers("cooperative", timeout_seconds=5)
        async with RemoteOrchestrator(daemon.address) as remote:
            first = await remote.execute_task("cooperative", {})
            assert await first.cancel("remote stop")
            with pytest.raises(TaskCanceledError):
                await first.result(timeout_seconds=5)
            second = await remote.execute_task("cooperative", {})
            code = await asyncio.to_thread(wa, ["cancel", second.task_id, "--orchestrator", daemon.address])
            assert code == 0
            assert (await second.wait(timeout_seconds=5)).status is TaskStatus.CANCELED
            assert await asyncio.to_thread(wa, ["cancel", second.task_id, "--orchestrator", daemon.address]) == 1
            assert await asyncio.to_thread(wa, ["cancel", "unknown", "--orchestrator", daemon.address]) == 2
