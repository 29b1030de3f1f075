"""Schedules on two `wa orchestrator` daemons sharing one NATS home, as real processes: each occurrence of an
every-second schedule runs exactly once while one daemon is SIGKILLed and restarted (every daemon fires every
occurrence, and the home's claim on the run's id, `NAME@OCCURRENCE`, lets one through); a schedule made
through one daemon is seen, paused and stopped on the other; and occurrences missed while both daemons were
down (past the on-time window) run once each after their restart, within the `missed="all"` grace.

The worker notes every run in a ledger file (`_schedule_workers.py`). What has no event across processes (a
run reaching the ledger, a record ending) is awaited with `eventually`, within a bound; nothing sleeps.

`WA_SCHEDULE_SECONDS` sets how many occurrences the first test lets run (20 in `make test`, 60 in `make chaos`).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from processes import FAST_REGISTRY, FAST_WORKER, Daemon, Start

from tests.conftest import eventually
from tests.nats_server import NatsServer
from worker_abstraction import RemoteOrchestrator, TaskStatus
from worker_abstraction.orchestrator.core.timetable import ON_TIME_SECONDS, REFRESH_SECONDS
from worker_abstraction.schedules import MISSED_ALL, OVERLAP_ALLOW_ALL, Schedule, run_id
from worker_abstraction.types import TaskRecord

SECONDS = int(os.environ.get("WA_SCHEDULE_SECONDS", "20"))
RUN_SECONDS = 30.0  # bound on a given number of further runs reaching the ledger (they come one a second)

pytestmark = pytest.mark.timeout(120 + 3 * SECONDS)


@dataclass(frozen=True)
class Run:
    """One line of the ledger: a run of the task `task_id`, its attempt, the worker process it ran in."""

    task_id: str
    attempt: int
    pid: int


def ledger_runs(ledger: Path) -> list[Run]:
    if not ledger.exists():
        return []
    runs = []
    for line in ledger.read_text().splitlines():
        task_id, attempt, pid = line.split()
        runs.append(Run(task_id, int(attempt), int(pid)))
    return runs


def occurrence(task_id: str) -> datetime:
    """The occurrence a run's id was made from (`NAME@YYYYmmddTHHMMSSZ`)."""
    return datetime.strptime(task_id.split("@", 1)[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


async def until_ran(ledger: Path, count: int) -> list[Run]:
    """The ledger, once it holds runs of at least `count` distinct tasks."""
    await eventually(
        lambda: len({run.task_id for run in ledger_runs(ledger)}) >= count,
        timeout_seconds=RUN_SECONDS + count,
        what=f"runs of {count} occurrences in {ledger}",
    )
    return ledger_runs(ledger)


async def daemon_on(start: Start, registry: Daemon, nats: NatsServer, replica: str) -> Daemon:
    """A daemon on the NATS home, once the worker's `tick` is seen through it."""
    daemon = await start(
        "orchestrator", "--port", "0", "--registry", registry.address,
        "--store", nats.url, "--lease-seconds", "2", "--replica", replica,
    )  # fmt: skip
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("tick", timeout_seconds=20)
    return daemon


async def system(start: Start, nats: NatsServer) -> tuple[Daemon, Daemon, Daemon]:
    """A registry, a `ScheduleWorker`, and daemons a and b on `nats` (with the registry, to restart one)."""
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start("worker", "_schedule_workers:ScheduleWorker", "--port", "0", "--registry", registry.address,
                *FAST_WORKER)  # fmt: skip
    return registry, await daemon_on(start, registry, nats, "a"), await daemon_on(start, registry, nats, "b")


def every_second(name: str, ledger: Path) -> Schedule:
    """Every second, each occurrence run whatever else runs, and missed ones run up to a minute late."""
    return Schedule(
        name, "tick", {"ledger": str(ledger)}, every_seconds=1,
        overlap=OVERLAP_ALLOW_ALL, missed=MISSED_ALL, grace_seconds=60,
    )  # fmt: skip


async def settled(remote: RemoteOrchestrator, name: str, ledger: Path) -> tuple[list[Run], list[TaskRecord]]:
    """The ledger and the schedule's runs' records, once every record has ended and the ledger holds each."""
    seen: dict[str, tuple[list[Run], list[TaskRecord]]] = {}

    async def agree() -> bool:
        records = await remote.tasks(task_id_prefix=f"{name}@", limit=1000)
        runs = ledger_runs(ledger)
        seen["last"] = runs, records
        ended = all(record.status.is_terminal for record in records)
        return ended and {run.task_id for run in runs} >= {record.task_id for record in records}

    await eventually(agree, timeout_seconds=RUN_SECONDS, what="the runs' records ended and in the ledger")
    return seen["last"]


def gaps(task_ids: Sequence[str]) -> list[str]:
    """The run ids missing between the first occurrence and the last (each second one)."""
    moments = sorted(occurrence(task_id) for task_id in task_ids)
    name = task_ids[0].split("@", 1)[0]
    present = set(moments)
    span = int((moments[-1] - moments[0]).total_seconds())
    expected = (moments[0] + timedelta(seconds=i) for i in range(span + 1))
    return [run_id(name, moment) for moment in expected if moment not in present]


async def test_each_occurrence_runs_exactly_once_while_one_of_two_daemons_is_sigkilled_and_restarted(
    start: Start, tmp_path: Path, nats_server: NatsServer
) -> None:
    ledger = tmp_path / "ledger"
    registry, a, b = await system(start, nats_server)
    async with RemoteOrchestrator(a.address) as on_a:
        added = await on_a.add_schedule(every_second("tick", ledger))
    async with RemoteOrchestrator(b.address) as on_b:
        # Both fire it; a is SIGKILLed a third of the way, b goes on alone (its runs still reach the ledger),
        # then a comes back on the same home and both fire it again.
        before_kill = await until_ran(ledger, SECONDS // 3)
        assert await a.stop(signal.SIGKILL) == -signal.SIGKILL
        killed = len({run.task_id for run in before_kill})
        alone = await until_ran(ledger, killed + 3)
        a = await daemon_on(start, registry, nats_server, "a")
        restarted = len({run.task_id for run in ledger_runs(ledger)})
        await until_ran(ledger, max(SECONDS, restarted + 3))
        paused = await on_b.pause_schedule("tick")
        runs, records = await settled(on_b, "tick", ledger)
        info = await on_b.schedule("tick")

    task_ids = [run.task_id for run in runs]
    late = max((r.submitted_at - occurrence(r.task_id)).total_seconds() for r in records if r.submitted_at)
    print(  # (seen with -s, as `make chaos` runs it)
        f"\nschedule tick: {len(task_ids)} runs ({len(set(task_ids))} occurrences), {restarted - killed} while "
        f"daemon a was down; latest submission {late:.2f}s after its occurrence; "
        f"{sum(len(r.attempts) > 1 for r in records)} run(s) of more than one attempt"
    )
    repeated = {t: [r for r in runs if r.task_id == t] for t, n in Counter(task_ids).items() if n > 1}
    assert not repeated, f"occurrences run more than once: {repeated}"
    assert not gaps(task_ids), f"occurrences never run: {gaps(task_ids)} (ledger: {task_ids})"
    first = min(occurrence(t) for t in task_ids)
    assert first == added.state.created_at.replace(microsecond=0) + timedelta(seconds=1), (first, added.state)
    assert len(task_ids) >= SECONDS
    assert len({run.task_id for run in alone}) >= killed + 3  # b fired on its own while a was down

    # The records agree: one per run, each COMPLETED with its own id as output, claimed under its occurrence's key.
    assert sorted(record.task_id for record in records) == sorted(task_ids)
    assert {record.status for record in records} == {TaskStatus.COMPLETED}
    assert all(record.output == record.task_id for record in records)
    assert all(record.idempotency_key == f"schedule:{record.task_id}" for record in records)
    # And the schedule: paused, nothing passed over, no error, its latest run among those.
    assert paused.schedule.paused and paused.next_occurrence is None
    assert (info.state.skipped, info.state.last_error) == (0, "")
    assert info.state.last_run in task_ids


async def test_a_schedule_made_on_one_daemon_is_seen_and_paused_on_the_other_and_stops_firing_on_both(
    start: Start, tmp_path: Path, nats_server: NatsServer
) -> None:
    ledger, witness_ledger = tmp_path / "ledger", tmp_path / "witness"
    _, a, b = await system(start, nats_server)
    async with RemoteOrchestrator(a.address) as on_a, RemoteOrchestrator(b.address) as on_b:
        added = await on_a.add_schedule(every_second("tick", ledger))
        await on_a.add_schedule(every_second("witness", witness_ledger))

        # b reads the shared book: it knows the schedule as a made it, within the refresh time.
        async def b_knows() -> bool:
            return "tick" in {info.name for info in await on_b.schedules()}

        await eventually(b_knows, timeout_seconds=REFRESH_SECONDS + 1, what="daemon b knowing schedule tick")
        seen = await on_b.schedule("tick")
        assert (seen.schedule, seen.state.created_at) == (added.schedule, added.state.created_at)
        await until_ran(ledger, 3)

        # Paused on b: a hears it within the refresh time, and from then on neither fires it, while the
        # witness, never paused, fires on for more than that.
        paused = await on_b.pause_schedule("tick")
        paused_at = datetime.now(UTC)
        assert paused.schedule.paused and paused.next_occurrence is None
        heard_by = paused_at + timedelta(seconds=REFRESH_SECONDS + 1)
        await eventually(
            lambda: any(
                occurrence(run.task_id) > heard_by + timedelta(seconds=3) for run in ledger_runs(witness_ledger)
            ),
            timeout_seconds=RUN_SECONDS,
            what="the witness firing 3 s past the pause's refresh",
        )
        on_a_now = await on_a.schedule("tick")
        runs, records = await settled(on_a, "tick", ledger)

    late = [run.task_id for run in runs if occurrence(run.task_id) > heard_by]
    assert not late, f"runs of occurrences after the pause reached a (at {paused_at:%H:%M:%S.%f}): {late}"
    assert on_a_now.schedule.paused and on_a_now.next_occurrence is None
    assert sorted(record.task_id for record in records) == sorted(run.task_id for run in runs)
    assert len(runs) >= 3 and not gaps([run.task_id for run in runs])


async def test_occurrences_missed_while_both_daemons_are_down_run_once_after_within_the_grace(
    start: Start, tmp_path: Path, nats_server: NatsServer
) -> None:
    ledger = tmp_path / "ledger"
    registry, a, b = await system(start, nats_server)
    async with RemoteOrchestrator(a.address) as on_a:
        await on_a.add_schedule(every_second("tick", ledger))
    before = {run.task_id for run in await until_ran(ledger, 3)}
    for daemon in (a, b):
        assert await daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    down_at = datetime.now(UTC)
    # The outage's length (not a synchronisation): past the on-time window, so its occurrences count as missed.
    await asyncio.sleep(ON_TIME_SECONDS + 3)
    a, b = await daemon_on(start, registry, nats_server, "a"), await daemon_on(start, registry, nats_server, "b")
    up_at = datetime.now(UTC)
    await eventually(
        lambda: any(occurrence(run.task_id) > up_at + timedelta(seconds=2) for run in ledger_runs(ledger)),
        timeout_seconds=RUN_SECONDS,
        what="runs after the restart",
    )
    async with RemoteOrchestrator(b.address) as on_b:
        await on_b.pause_schedule("tick")
        runs, records = await settled(on_b, "tick", ledger)
        info = await on_b.schedule("tick")

    task_ids = [run.task_id for run in runs]
    repeated = {t: [r for r in runs if r.task_id == t] for t, n in Counter(task_ids).items() if n > 1}
    assert not repeated, f"occurrences run more than once: {repeated}"
    assert not gaps(task_ids), f"occurrences never run: {gaps(task_ids)} (ledger: {task_ids})"
    missed = [t for t in task_ids if down_at < occurrence(t) < up_at - timedelta(seconds=ON_TIME_SECONDS)]
    assert missed, f"no occurrence of the outage ran late (down {down_at}, up {up_at}): {task_ids}"
    assert set(task_ids) > before
    assert sorted(record.task_id for record in records) == sorted(task_ids)
    assert (info.state.skipped, info.state.last_error) == (0, "")
