"""`wa` for daily use, as real processes: submit through a daemon or in-process, --json, --detach, Ctrl-C,
and output into a pipe whose reader leaves early.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from processes import HERE, Daemon, Result, Start, env

from worker_abstraction import RemoteOrchestrator

pytestmark = pytest.mark.timeout(90)

WAIT_SECONDS = 20.0  # the bound on every wait for a process or a line


@dataclass
class Cluster:
    registry: Daemon
    worker: Daemon
    daemon: Daemon


@pytest.fixture
async def cluster(start: Start) -> Cluster:
    registry = await start("registry", "--port", "0")
    worker = await start("worker", "_cli_workers:DailyWorker", "--port", "0", "--registry", registry.address)
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:")
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("shout", timeout_seconds=WAIT_SECONDS)
    return Cluster(registry, worker, daemon)


async def wa_into_closed_pipe(*args: str) -> Result:
    """Run `wa ARGS` with stdout a pipe whose reader has already gone: its first write meets EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker_abstraction.cli", *args,
            cwd=HERE, env=env(), stdout=write_end, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(write_end)
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Result(process.returncode, "", err.decode())


async def test_every_printing_command_into_a_pipe_whose_reader_left_exits_141_without_a_traceback(
    cluster: Cluster,
) -> None:
    async with RemoteOrchestrator(cluster.daemon.address) as remote:
        handle = await remote.execute_task("shout", {"text": "hi"})
        await handle.result(timeout_seconds=WAIT_SECONDS)
    daemon, registry = ("--orchestrator", cluster.daemon.address), ("--registry", cluster.registry.address)
    commands: Sequence[tuple[str, ...]] = [
        ("workers", *registry),
        ("workers", "--json", *registry),
        ("workers", *daemon),
        ("task", "list", *daemon),
        ("task", "list", "--json", *daemon),
        ("task", "get", handle.task_id, *daemon),
        ("task", "get", handle.task_id, "--json", *daemon),
        ("dlq", "list", "--json", *daemon),
        ("queue", *daemon),
        ("queue", "--json", *daemon),
        ("submit", "shout", "-p", "text=hi", *daemon),
        ("config", "show"),
    ]
    results = await asyncio.gather(*(wa_into_closed_pipe(*command) for command in commands))
    outcomes = {" ".join(command[:3]): (r.code, r.err) for command, r in zip(commands, results, strict=True)}
    assert all(outcome == (141, "") for outcome in outcomes.values()), outcomes
