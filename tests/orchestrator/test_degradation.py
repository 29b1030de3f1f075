"""Graceful degradation: with the registry down, or freshly restarted and still empty, known workers keep working."""

from __future__ import annotations

import pytest

from tests.conftest import ToolWorker, eventually
from worker_abstraction import AsyncOrchestrator, RegistryClient, RegistryServer
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory

pytestmark = pytest.mark.timeout(30)


async def test_workers_are_used_while_the_registry_is_down_and_after_it_restarts_empty() -> None:
    first = RegistryServer(port=0, ttl_seconds=30)
    await first.start()
    # Slow heartbeats: the worker will not register again with the new registry during the test.
    worker = ToolWorker(first.address, heartbeat_interval_seconds=10)
    await worker.start()
    try:
        directory = WorkerDirectory(RegistryClient(first.address))
        async with AsyncOrchestrator(first.address, directory=directory) as orchestrator:
            await orchestrator.wait_for_workers("echo", timeout_seconds=5)
            await first.stop(None)
            down = await orchestrator.execute_task("echo", {"text": "registry down"})
            assert await down.result(timeout_seconds=5) == {"text": "registry down"}

            second = RegistryServer(port=first.port, ttl_seconds=30)  # back on its port, knowing nobody
            await second.start()
            try:
                await eventually(lambda: directory.snapshots >= 2, what="the orchestrator re-synced")
                assert await second.registry.live_workers() == []
                empty = await orchestrator.execute_task("echo", {"text": "registry empty"})
                assert await empty.result(timeout_seconds=5) == {"text": "registry empty"}
                assert empty.worker_id == worker.worker_id
            finally:
                await second.stop(None)
    finally:
        await worker.stop(grace_seconds=0.5)


async def test_a_carried_worker_that_never_registers_again_is_dropped() -> None:
    first = RegistryServer(port=0, ttl_seconds=30)
    await first.start()
    worker = ToolWorker(first.address, heartbeat_interval_seconds=10)
    await worker.start()
    try:
        directory = WorkerDirectory(RegistryClient(first.address), carry_over_seconds=0.3)
        async with AsyncOrchestrator(first.address, directory=directory) as orchestrator:
            await orchestrator.wait_for_workers("echo", timeout_seconds=5)
            await first.stop(None)
            second = RegistryServer(port=first.port, ttl_seconds=30)
            await second.start()
            try:
                await eventually(lambda: directory.snapshots >= 2, what="the orchestrator re-synced")
                await eventually(lambda: directory.workers == {}, what="the carried worker is dropped")
            finally:
                await second.stop(None)
    finally:
        await worker.stop(grace_seconds=0.5)
