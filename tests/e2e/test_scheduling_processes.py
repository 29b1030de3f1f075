"""Scheduling across real worker processes: slots respected, everything done, load spread evenly."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from processes import FAST_REGISTRY, FAST_WORKER, HERE, Start, env, wa

from worker_abstraction import AsyncOrchestrator, TaskStatus


async def test_two_thousand_tasks_over_four_two_slot_workers(start: Start) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    workers = await asyncio.gather(
        *(
            start("worker", "_slot_workers:SlotWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER)
            for _ in range(4)
        )
    )
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("noop", count=4, timeout_seconds=10)
        statuses = [
            h.status async for h in orchestrator.execute_many("noop", ({} for _ in range(2000)), max_pending=400)
        ]
        assert statuses == [TaskStatus.COMPLETED] * 2000
        seen = {}
        for worker in workers:
            handle = await orchestrator.execute_task("stats", {}, worker_id=worker.worker_id)
            seen[worker.worker_id] = await handle.result(timeout_seconds=10)
    assert sum(s["done"] for s in seen.values()) == 2000
    assert all(s["peak"] <= 2 for s in seen.values()), seen  # no worker ever ran more than its two slots
    # Every offer was taken: the orchestrator never sent a task to a full worker.
    assert sum(s["received"] for s in seen.values()) == 2000 + 4
    done = [s["done"] for s in seen.values()]
    assert max(done) <= 1.3 * min(done), done


async def _wa(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker_abstraction.cli",
        *args,
        cwd=HERE,
        env=env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_cli_daemon_queue_priorities_and_tags(start: Start, tmp_path: Path) -> None:
    gate = tmp_path / "release-first"
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start(
        "worker", "_slot_workers:SlotWorker", "--port", "0", "--registry", registry.address,
        "--max-concurrent", "1", "--tag", "blue", *FAST_WORKER,
    )  # fmt: skip
    daemon = await start(
        "orchestrator", "--port", "0", "--registry", registry.address, "--store", str(tmp_path / "tasks.db")
    )
    via = ("--orchestrator", daemon.address)
    submits = []
    try:
        async with asyncio.timeout(30):
            while True:  # wait until the daemon's view has the worker
                probe = await _wa("submit", "hold", *via, "--require-tag", "blue")
                if await probe.wait() == 0:
                    break
            submits.append(await _wa("submit", "hold", "-p", "label=first", "-p", f"until_file={gate}", *via))
            first_line = await submits[0].stdout.readline()  # type: ignore[union-attr]
            assert b"-> worker" in first_line
            for label, priority in [("low", "0"), ("high", "5")]:
                submits.append(await _wa("submit", "hold", "-p", f"label={label}", *via,
                                         "--priority", priority))  # fmt: skip
            depths: dict[str, Any] = {}
            while depths != {"hold": {"5": 1, "0": 1}}:
                queue = await _wa("queue", *via, "--json")
                out, _ = await queue.communicate()
                depths = json.loads(out)
            gate.touch()  # the first task ends; the queued ones run
            results = [await p.communicate() for p in submits]
        assert [p.returncode for p in submits] == [0, 0, 0]
        assert all(b"queued" in out.splitlines()[0] for out, _ in results[1:])
        impossible = await _wa("submit", "hold", *via, "--require-tag", "red")
        _, err = await impossible.communicate()
        assert impossible.returncode == 2 and b"red" in err
        table = await _wa("queue", *via)
        out, _ = await table.communicate()
        assert out.splitlines()[0].split() == [b"CAPABILITY", b"PRIORITY", b"WAITING"]
    finally:
        for process in submits:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_a_daemon_told_to_queue_without_workers_runs_the_task_once_one_arrives(start: Start) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    plain = await start("orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:")
    refused = await wa("submit", "noop", "--detach", "--orchestrator", plain.address)
    assert refused.code != 0 and "noop" in refused.err  # the default: no capable worker, refused at once

    daemon = await start(
        "orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:",
        "--queue-without-workers",
    )  # fmt: skip
    detached = await wa("submit", "noop", "--detach", "--orchestrator", daemon.address)
    assert detached.code == 0, detached.err
    [task_id] = detached.out.split()
    queued = await wa("queue", "--orchestrator", daemon.address, "--json")
    assert json.loads(queued.out) == {"noop": {"0": 1}}

    await start("worker", "_slot_workers:SlotWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER)
    watched = await wa("task", "watch", task_id, "--orchestrator", daemon.address)
    assert watched.code == 0, watched.err
    assert watched.out.splitlines()[-2].startswith("COMPLETED"), watched.out


async def test_a_daemon_started_with_a_version_split_and_callers_asking_for_ranges(start: Start) -> None:
    """`wa orchestrator --version-split` splits from the first task; `wa submit CAP@RANGE` picks a version;
    `wa versions` shows them, the deprecated one marked."""
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    for worker in ("SummarizeOne", "SummarizeTwo"):
        await start("worker", f"_version_workers:{worker}", "--port", "0", "--registry", registry.address, *FAST_WORKER)
    daemon = await start(
        "orchestrator", "--port", "0", "--registry", registry.address, "--version-split", "summarize:1.0.0=1,^2=3"
    )
    async with AsyncOrchestrator(registry.address) as watcher:
        await watcher.wait_for_workers("summarize", count=2, timeout_seconds=10)
    done = await wa("submit", "summarize@^1", "-p", "text=hello", "--json", "--orchestrator", daemon.address)
    assert done.code == 0 and json.loads(done.out.splitlines()[-1])["output"]["version"] == "1.0.0", done.err
    versions = []
    for _ in range(8):
        done = await wa("submit", "summarize", "-p", "text=x", "--json", "--orchestrator", daemon.address)
        assert done.code == 0, done.err
        versions.append(json.loads(done.out.splitlines()[-1])["output"]["version"])
    assert versions.count("2.0.0") == 6 and versions.count("1.0.0") == 2, versions
    listed = await wa("versions", "list", "--orchestrator", daemon.address)
    assert "summarize: 1.0.0 (1 worker, deprecated: use ^2), 2.0.0 (1 worker); split 1.0.0=1 ^2=3" in listed.out
    bad = await wa("orchestrator", "--port", "0", "--registry", registry.address, "--version-split", "summarize:^^1=1")
    assert bad.code == 2 and "does not parse" in bad.err
