"""`wa schedule ...` as a user runs it: real `wa registry`, `wa worker` and `wa orchestrator --store` processes,
and each command a process of its own. An every-second schedule is seen firing in `wa task list`, paused
(no occurrence of it runs while a second schedule, the witness, goes on firing), resumed, triggered and
removed; the witness is kept across a restart of the daemon and fires again after it.

Nothing here sleeps: what has no event across processes (a run appearing in the daemon's task list) is
awaited with `eventually`, within a bound.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from processes import FAST_REGISTRY, FAST_WORKER, Daemon, Start, wa

from tests.conftest import eventually
from worker_abstraction import RemoteOrchestrator

pytestmark = pytest.mark.timeout(180)

WAIT_SECONDS = 30.0  # for a run to show in the task list (each look is a `wa` process)


async def orchestrator(start: Start, registry: Daemon, store: Path) -> Daemon:
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address, "--store", str(store))
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("square", timeout_seconds=20)
    return daemon


async def schedule(daemon: Daemon, *args: str) -> Any:
    return await wa("schedule", *args, "--orchestrator", daemon.address)


def occurrence(task_id: str) -> datetime | None:
    """The occurrence a run's id was made from (None for a triggered run, `NAME@manual-...`)."""
    made = task_id.split("@", 1)[1]
    if made.startswith("manual-"):
        return None
    return datetime.strptime(made, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


async def runs(daemon: Daemon, name: str) -> dict[str, str]:
    """The schedule's runs the daemon holds, as `wa task list --id NAME@ --all --json` prints them: id -> status."""
    listed = await wa("task", "list", "--id", f"{name}@", "--all", "--json", "--orchestrator", daemon.address)
    assert listed.code == 0, listed.err
    return {task["task_id"]: task["status"] for task in json.loads(listed.out)}


def fired_after(moment: datetime, count: int = 1) -> Callable[[dict[str, str]], bool]:
    """Whether at least `count` completed runs were made from occurrences after `moment`."""

    def holds(found: dict[str, str]) -> bool:
        after = [t for t, status in found.items() if status == "COMPLETED" and (o := occurrence(t)) and o > moment]
        return len(after) >= count

    return holds


async def until_fired(daemon: Daemon, name: str, moment: datetime, count: int = 1) -> dict[str, str]:
    seen: dict[str, str] = {}

    async def fired() -> bool:
        seen.clear()
        seen.update(await runs(daemon, name))
        return fired_after(moment, count)(seen)

    await eventually(fired, timeout_seconds=WAIT_SECONDS, what=f"{count} run(s) of {name} after {moment}")
    return seen


async def test_a_schedule_fires_pauses_resumes_is_triggered_removed_and_kept_across_a_restart(
    start: Start, tmp_path: Path
) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    worker = ("_workflow_workers:WorkflowWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER)
    await start("worker", *worker)
    store = tmp_path / "tasks.db"
    daemon = await orchestrator(start, registry, store)
    began = datetime.now(UTC)

    added = await schedule(daemon, "add", "tick", "square", "-p", "value=3", "--every", "1s")
    assert added.code == 0, added.err
    assert added.out.splitlines()[:3] == ["schedule  tick", "runs      square", 'params    {"value":3}']
    witness = await schedule(daemon, "add", "witness", "square", "-p", "value=2", "--every", "1s", "--json")
    assert witness.code == 0, witness.err
    assert json.loads(witness.out)["every_seconds"] == 1

    # It fires: its runs show in the daemon's task list, one per second, each under the id of its occurrence.
    await until_fired(daemon, "tick", began, count=2)
    listed = await schedule(daemon, "list")
    assert listed.code == 0, listed.err
    rows = {line.split()[0]: line.split() for line in listed.out.splitlines()[1:]}
    assert set(rows) == {"tick", "witness"} and rows["tick"][1:4] == ["square", "every", "1s"]
    assert rows["tick"][-1] == "no" and rows["tick"][-5].startswith("tick@")  # PAUSED; LAST RUN (then its status)

    # Paused, it fires nothing, while the witness fires at two more seconds at least.
    paused = await schedule(daemon, "pause", "tick")
    assert (paused.code, paused.out.strip()) == (0, "schedule tick: paused: it fires nothing until resumed")
    paused_at = datetime.now(UTC)
    await until_fired(daemon, "witness", paused_at + timedelta(seconds=2))
    after_pause = [t for t in await runs(daemon, "tick") if (o := occurrence(t)) is not None and o > paused_at]
    assert after_pause == []
    got = await schedule(daemon, "get", "tick", "--json")
    state = json.loads(got.out)
    assert state["paused"] is True and state["next_occurrence"] is None and state["next_occurrences"] == []

    # Resumed, it fires again.
    resumed = await schedule(daemon, "resume", "tick")
    assert resumed.code == 0 and resumed.out.startswith("schedule tick: resumed: next at "), resumed.err
    await until_fired(daemon, "tick", datetime.now(UTC))

    # Triggered: one run now, followed to its end.
    triggered = await schedule(daemon, "trigger", "tick", "--wait")
    assert triggered.code == 0, triggered.err
    first, *updates = triggered.out.splitlines()
    assert first.startswith("task tick@manual-") and first.endswith(" (schedule tick)")
    assert "COMPLETED" in updates and updates[-1] == "9"

    # Removed: gone from the daemon, its runs kept.
    removed = await schedule(daemon, "remove", "tick")
    assert (removed.code, removed.out.strip()) == (0, "schedule tick: removed (its runs so far stay)")
    unknown = await schedule(daemon, "get", "tick")
    assert (unknown.code, unknown.err.strip()) == (1, f"no schedule 'tick' on the orchestrator at {daemon.address}")
    assert first.split()[1] in await runs(daemon, "tick")

    # The daemon restarts on its store: the witness is kept, with what it fired, and fires again.
    before = json.loads((await schedule(daemon, "get", "witness", "--json")).out)
    assert await daemon.stop() == 0
    daemon = await orchestrator(start, registry, store)
    restarted = datetime.now(UTC)
    kept = await schedule(daemon, "list", "--json")
    assert kept.code == 0, kept.err
    (after,) = json.loads(kept.out)
    assert after["name"] == "witness" and after["fired"] >= before["fired"] > 0
    assert after["created_at"] == before["created_at"]
    await until_fired(daemon, "witness", restarted)
