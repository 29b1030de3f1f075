"""Waits that free the worker's slot: the question ends the attempt, the slot takes other work, and the answer
sends the task again, to any capable worker, where the questions already answered are answered at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import eventually
from tests.hitl.workers import FreeingWorker
from worker_abstraction import (
    AsyncOrchestrator,
    OrchestratorServer,
    RegistryServer,
    RemoteOrchestrator,
    TaskStatus,
)

pytestmark = pytest.mark.timeout(90)


async def test_a_question_frees_the_slot_and_the_answer_resumes_the_handler(
    registry: RegistryServer, start_worker: Any
) -> None:
    await start_worker(FreeingWorker, max_concurrent_tasks=1)
    FreeingWorker.starts = 0
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("interview", timeout_seconds=10)
        handle = await orchestrator.execute_task("interview", {"who": "ada"})
        first = await handle.input_requested(timeout_seconds=10)
        assert first.prompt == "ada: your name?" and handle.status is TaskStatus.INPUT_REQUIRED
        assert handle.worker_id == ""  # on no worker while it waits
        # The only slot is free: another task runs meanwhile.
        assert await (await orchestrator.execute_task("quick", {})).result(timeout_seconds=10) == "quick"
        await handle.provide_input("Ada")
        second = await handle.input_requested(timeout_seconds=10, after=first.request_id)
        assert second.prompt == "Ada: your age?"
        await handle.provide_input(36)
        assert await handle.result(timeout_seconds=10) == {"who": "ada", "name": "Ada", "age": 36}
        assert FreeingWorker.starts == 3  # the first run, and once after each answer
        record = await orchestrator.task(handle.task_id)
        assert [(e.request.prompt, e.answer.value if e.answer else None) for e in record.inputs] == [
            ("ada: your name?", "Ada"),
            ("Ada: your age?", 36),
        ]


async def test_the_wait_survives_its_worker_and_a_daemon_restart(
    registry: RegistryServer, start_worker: Any, tmp_path: Path
) -> None:
    first_worker = await start_worker(FreeingWorker)
    store = str(tmp_path / "tasks.db")
    async with (
        OrchestratorServer(registry.address, port=0, store_path=store) as daemon,
        RemoteOrchestrator(daemon.address) as remote,
    ):
        await remote.wait_for_workers("interview", timeout_seconds=10)
        handle = await remote.execute_task("interview", {"who": "bob"})
        await handle.input_requested(timeout_seconds=10)
        await first_worker.stop(grace_seconds=0)  # the worker that asked is gone

        async def gone() -> bool:
            return all(w.worker_id != first_worker.worker_id for w in await remote.workers())

        await eventually(gone, timeout_seconds=10, what="the registry forgets the stopped worker")
    await start_worker(FreeingWorker)
    async with (
        OrchestratorServer(registry.address, port=0, store_path=store) as daemon,
        RemoteOrchestrator(daemon.address) as remote,
    ):
        again = await remote.watch(handle.task_id)
        request = await again.input_requested(timeout_seconds=40)  # asked again by the new worker
        assert request.prompt == "bob: your name?"
        await remote.provide_input(handle.task_id, "Bob")
        next_one = await again.input_requested(timeout_seconds=20, after=request.request_id)
        assert next_one.prompt == "Bob: your age?"
        await remote.provide_input(handle.task_id, 7)
        assert await again.result(timeout_seconds=10) == {"who": "bob", "name": "Bob", "age": 7}


async def test_answers_given_before_a_daemon_restart_are_kept(
    registry: RegistryServer, start_worker: Any, tmp_path: Path
) -> None:
    await start_worker(FreeingWorker)
    store = str(tmp_path / "tasks.db")
    async with (
        OrchestratorServer(registry.address, port=0, store_path=store) as daemon,
        RemoteOrchestrator(daemon.address) as remote,
    ):
        await remote.wait_for_workers("interview", timeout_seconds=10)
        handle = await remote.execute_task("interview", {"who": "ann"})
        first = await handle.input_requested(timeout_seconds=10)
        await handle.provide_input("Ann")
        assert (await handle.input_requested(timeout_seconds=20, after=first.request_id)).prompt == "Ann: your age?"
    async with (
        OrchestratorServer(registry.address, port=0, store_path=store) as daemon,
        RemoteOrchestrator(daemon.address) as remote,
    ):
        again = await remote.watch(handle.task_id)
        # Sent again after the restart with the answer it was given: the first question is not asked again.
        assert (await again.input_requested(timeout_seconds=20)).prompt == "Ann: your age?"
        await remote.provide_input(handle.task_id, 30)
        assert await again.result(timeout_seconds=10) == {"who": "ann", "name": "Ann", "age": 30}
