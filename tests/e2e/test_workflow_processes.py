"""Workflows through `wa orchestrator` daemons, one SIGKILLed mid-workflow: on SQLite it is restarted on its
store; on NATS the other daemon takes its share over. Every workflow ends once, with the right outputs, and no
step that completed ran again (the workers' ledger counts every run, across processes)."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest
from processes import FAST_REGISTRY, FAST_WORKER, Daemon, Start

from worker_abstraction import RemoteOrchestrator, TaskStatus
from worker_abstraction.orchestrator.core.workflow_handle import WorkflowHandle
from worker_abstraction.workflows import Workflow

pytestmark = pytest.mark.timeout(120)

WORKFLOWS = 6


def _squares(ledger: Path, gate: Path) -> Workflow:
    flow = Workflow("squares")
    numbers = flow.step("numbers", "numbers", {"count": 4, "ledger": str(ledger)})
    squares = flow.map("squares", "square", over=numbers, item="value", concurrency=2,
                       params={"ledger": str(ledger), "until_file": str(gate)})  # fmt: skip
    flow.step("total", "total", {"values": squares, "ledger": str(ledger)})
    return flow


async def _mapping(handle: WorkflowHandle) -> None:
    """Until the workflow's map step started (its first step completed)."""
    async for step in handle:
        if (step.name, step.status) == ("squares", "RUNNING"):
            return


@pytest.mark.parametrize("store", ["sqlite", "nats"])
async def test_workflows_survive_a_sigkilled_daemon_and_no_completed_step_runs_twice(
    start: Start, tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "open"
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start("worker", "_workflow_workers:WorkflowWorker", "--port", "0", "--registry", registry.address,
                *FAST_WORKER)  # fmt: skip
    base = ("orchestrator", "--port", "0", "--registry", registry.address)
    if store == "sqlite":
        daemon_args = (*base, "--store", str(tmp_path / "tasks.db"))
        first = await start(*daemon_args)
    else:
        url = request.getfixturevalue("nats_server").url
        shared = (*base, "--store", url, "--lease-seconds", "2")
        first, other = await start(*shared, "--replica", "a"), await start(*shared, "--replica", "b")
    async with RemoteOrchestrator(first.address) as remote:
        await remote.wait_for_workers("square", timeout_seconds=20)
        handles = [await remote.run_workflow(_squares(ledger, gate), workflow_id=f"wf-{i}") for i in range(WORKFLOWS)]
        async with asyncio.timeout(30):
            for handle in handles:
                await _mapping(handle)
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

    survivor: Daemon = await start(*daemon_args) if store == "sqlite" else other
    gate.touch()
    async with RemoteOrchestrator(survivor.address) as remote:
        records = [await (await remote.watch_workflow(f"wf-{i}")).wait(timeout_seconds=60) for i in range(WORKFLOWS)]
        listed = await remote.workflows()
    assert [r.status for r in records] == [TaskStatus.COMPLETED] * WORKFLOWS, [r.error for r in records]
    assert [r.outputs["total"] for r in records] == [1 + 4 + 9 + 16] * WORKFLOWS
    assert {r.workflow_id for r in listed} >= {f"wf-{i}" for i in range(WORKFLOWS)}
    runs = Counter(ledger.read_text().split())
    assert all(count == 1 for count in runs.values()), [t for t, n in runs.items() if n > 1]
    assert len(runs) == WORKFLOWS * (1 + 4 + 1)
