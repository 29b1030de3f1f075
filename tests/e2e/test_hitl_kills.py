"""Human in the loop across kills, with real processes: a task waiting for input outlives a SIGKILLed daemon and
is answered with `wa respond` through its successor; a slot-freeing wait outlives its SIGKILLed worker and
goes on on another; and 10,000 streamed chunks reach a reader in order, one that reconnects mid-stream missing
none."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from processes import FAST_REGISTRY, FAST_WORKER, REPO, Start, wa

from worker_abstraction import RemoteOrchestrator

pytestmark = pytest.mark.timeout(150)

WAIT_SECONDS = 40.0


async def _submit(daemon: str, capability: str, *params: str) -> str:
    args = [p for param in params for p in ("-p", param)]
    submitted = await wa("submit", capability, *args, "--detach", "--json", "--orchestrator", daemon)
    assert submitted.code == 0, submitted.err
    return str(next(json.loads(line)["task_id"] for line in submitted.out.splitlines() if "task_id" in line))


async def test_a_waiting_task_outlives_a_killed_daemon_and_is_answered_through_the_next(
    start: Start, tmp_path: Path
) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start("worker", "tests.hitl.workers:AskingWorker", "--port", "0", "--registry", registry.address,
                *FAST_WORKER, cwd=REPO)  # fmt: skip
    store = str(tmp_path / "tasks.db")
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address, "--store", store)
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("review", timeout_seconds=WAIT_SECONDS)
        task_id = await _submit(daemon.address, "review", "item=kill")
        await (await remote.watch(task_id)).input_requested(timeout_seconds=WAIT_SECONDS)
    await daemon.stop(signal.SIGKILL)
    successor = await start("orchestrator", "--port", "0", "--registry", registry.address, "--store", store)
    async with RemoteOrchestrator(successor.address) as remote:
        handle = await remote.watch(task_id)
        await handle.input_requested(timeout_seconds=WAIT_SECONDS)  # found again on its worker
        answered = await wa("respond", task_id, "--value", '{"approved": true}', "--orchestrator", successor.address)
        assert answered.code == 0, answered.err
        assert (await handle.result(timeout_seconds=WAIT_SECONDS))["answer"] == {"approved": True}


async def test_a_slot_freeing_wait_outlives_its_killed_worker(start: Start) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    first = await start("worker", "tests.hitl.workers:FreeingWorker", "--port", "0", "--registry",
                        registry.address, *FAST_WORKER, cwd=REPO)  # fmt: skip
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address)
    at = ("--orchestrator", daemon.address)
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("interview", timeout_seconds=WAIT_SECONDS)
        task_id = await _submit(daemon.address, "interview", "who=kim")
        handle = await remote.watch(task_id)
        asked = await handle.input_requested(timeout_seconds=WAIT_SECONDS)
        await first.stop(signal.SIGKILL)  # the worker that asked dies: the task waits on no worker anyway
        await start("worker", "tests.hitl.workers:FreeingWorker", "--port", "0", "--registry", registry.address,
                    *FAST_WORKER, cwd=REPO)  # fmt: skip
        assert (await wa("respond", task_id, "--text", "Kim", *at)).code == 0
        following = await handle.input_requested(timeout_seconds=WAIT_SECONDS, after=asked.request_id)
        assert following.prompt == "Kim: your age?"
        assert (await wa("respond", task_id, "--value", "41", *at)).code == 0
        assert await handle.result(timeout_seconds=WAIT_SECONDS) == {"who": "kim", "name": "Kim", "age": 41}


async def test_ten_thousand_chunks_arrive_in_order_and_a_reader_that_reconnects_misses_none(start: Start) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start("worker", "tests.hitl.workers:AskingWorker", "--port", "0", "--registry", registry.address,
                *FAST_WORKER, cwd=REPO)  # fmt: skip
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address)
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("tokens", timeout_seconds=WAIT_SECONDS)
        task_id = await _submit(daemon.address, "tokens", "count=10000", "size=100")
        seen = []
        async for chunk in (await remote.watch(task_id)).stream():
            seen.append(chunk)
            if chunk.index == 4321:
                break
    async with RemoteOrchestrator(daemon.address) as again:  # a new connection, as after a break
        handle = await again.watch(task_id)
        seen += [chunk async for chunk in handle.stream(after=seen[-1].index)]
        assert await handle.result(timeout_seconds=WAIT_SECONDS) == 10_000
    assert [c.index for c in seen] == list(range(1, 10_001))
    assert all(c.text == f"{c.index - 1:0100d}" for c in seen)
