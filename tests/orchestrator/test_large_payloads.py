"""Large arguments and outputs: one message size limit everywhere; what would not fit is refused (arguments) or
failed (output) with the size and the limit, and no worker is blamed for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ToolWorker
from worker_abstraction import (
    AsyncOrchestrator,
    InvalidParametersError,
    RegistryServer,
    RemoteOrchestrator,
    TaskFailedError,
    WorkerState,
    limits,
)
from worker_abstraction.orchestrator.api import AsyncOrchestratorAPI
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

pytestmark = pytest.mark.timeout(60)

LIMIT = 2 * 2**20  # small, so the test moves megabytes, not tens of them


@pytest.fixture
def small_messages() -> Iterator[int]:
    limits.set_max_message_bytes(LIMIT)
    try:
        yield limits.payload_limit()
    finally:
        limits.set_max_message_bytes(limits.DEFAULT_MAX_MESSAGE_BYTES)


async def _check(orch: AsyncOrchestratorAPI, room: int) -> None:
    await orch.wait_for_workers("echo", timeout_seconds=5)
    overhead = len("text") + len('""')  # the parameter's name and the quotes around its value
    just_under = "x" * (room - 64)  # (the echoed output, `{"text": ...}`, must fit too)
    assert await (await orch.execute_task("echo", {"text": just_under})).result(timeout_seconds=20) == {
        "text": just_under
    }
    with pytest.raises(InvalidParametersError) as refused:
        await orch.execute_task("echo", {"text": "x" * (room - overhead + 1)})
    [problem] = refused.value.problems
    assert f"{room + 1:,} bytes" in problem and f"{room:,}" in problem
    # An output that would not fit fails its task, and only its task.
    handle = await orch.execute_task("echo", {"text": "y" * (room // 3), "times": 4})
    with pytest.raises(TaskFailedError) as failed:
        await handle.result(timeout_seconds=20)
    assert failed.value.error_type == "OutputTooLarge" and f"{room:,}" in failed.value.error_message
    health = await orch.worker_health()
    assert [(h.state, h.circuit) for h in health] == [(WorkerState.ACTIVE, "closed")]  # nobody blamed


async def test_the_embedded_engine_keeps_to_the_limit(small_messages: int) -> None:
    async with RegistryServer(port=0, ttl_seconds=5) as registry:
        worker = ToolWorker(registry.address, heartbeat_interval_seconds=0.2)
        await worker.start()
        try:
            async with AsyncOrchestrator(registry.address) as orchestrator:
                await _check(orchestrator, small_messages)
        finally:
            await worker.stop(grace_seconds=0.5)


async def test_the_daemon_and_its_callers_keep_to_the_limit(small_messages: int) -> None:
    async with RegistryServer(port=0, ttl_seconds=5) as registry:
        worker = ToolWorker(registry.address, heartbeat_interval_seconds=0.2)
        await worker.start()
        try:
            async with (
                OrchestratorServer(registry.address, port=0) as server,
                RemoteOrchestrator(server.address) as remote,
            ):
                await _check(remote, small_messages)
        finally:
            await worker.stop(grace_seconds=0.5)
