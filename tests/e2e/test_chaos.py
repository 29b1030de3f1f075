"""Fault injection over real processes: no task is lost, duplicated or wrong when everything breaks once.

Tasks run over three worker processes while, one after the other and each when enough tasks are done, one
worker is SIGKILLed, one is SIGSTOPped until the registry evicts it and then resumed, the registry is
SIGKILLed and started again on its port, and the orchestrator daemon is SIGKILLed and started again from its
store on its port. Then the daemon's store must hold every task exactly once, COMPLETED with the right
output, with the interrupted attempts and their retries recorded.

`make test` runs a small instance; `make chaos` the issue's size: WA_CHAOS_TASKS=500, WA_CHAOS_MIN_MS=50,
WA_CHAOS_MAX_MS=500. WA_CHAOS_SEED picks the durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _chaos_workers import expected_output
from processes import FAST_REGISTRY, FAST_WORKER, Daemon, Start

from worker_abstraction import (
    AsyncTaskHandle,
    NoWorkerError,
    OrchestratorUnavailableError,
    RegistryClient,
    RegistryUnavailableError,
    RemoteOrchestrator,
    RetryPolicy,
    TaskRecord,
    TaskStatus,
    TaskUpdate,
    WorkerAbstractionError,
)
from worker_abstraction.registry.events import WorkerEventType

TASKS = int(os.environ.get("WA_CHAOS_TASKS", "100"))
MIN_MS = int(os.environ.get("WA_CHAOS_MIN_MS", "50"))
MAX_MS = int(os.environ.get("WA_CHAOS_MAX_MS", "200"))
SEED = int(os.environ.get("WA_CHAOS_SEED", "0"))
LOG_LEVEL = os.environ.get("WA_CHAOS_LOG_LEVEL", "")  # e.g. DEBUG, for every process's stderr file

WORKERS, SLOTS = 3, 2
WINDOW = 2 * WORKERS * SLOTS  # tasks submitted but not yet seen finished; the rest wait in the client
POLICY = RetryPolicy(max_attempts=6)
TASK_TIMEOUT_SECONDS = 120.0
# Twice the work on the four slots left after the SIGKILL, plus the faults' own time.
RUN_SECONDS = 45 + 2 * TASKS * (MIN_MS + MAX_MS) / 2 / 1000 / (2 * SLOTS)
STEP_SECONDS = 15.0  # any one wait inside the choreography (a worker busy, an eviction, a restart)
POLL_SECONDS = 0.05


@dataclass
class Run:
    """The client's side of the run, shared by the submitter and the fault injector."""

    started: float = field(default_factory=time.monotonic)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    allowed: int = WINDOW  # task i may be submitted once i < done + allowed
    submitted: int = 0  # tasks whose submission started
    done: int = 0  # tasks the client saw finish
    submit_calls: int = 0
    unavailable: int = 0  # submissions refused with OrchestratorUnavailableError, then sent again
    no_worker: int = 0  # ... with NoWorkerError once the run was going
    rewatches: int = 0  # handles that lost the daemon and were opened again
    resent: set[int] = field(default_factory=set)  # tasks whose submission met the daemon down
    killed_at: datetime | None = None  # when the daemon was SIGKILLed
    task_ids: dict[int, str] = field(default_factory=dict)
    finals: dict[int, TaskUpdate] = field(default_factory=dict)
    stage: str = "starting"
    events: list[str] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def note(self, what: str) -> None:
        self.stage = what
        in_flight = self.submitted - self.done
        self.events.append(f"{self.elapsed():6.2f}s  done {self.done:4}/{TASKS}, {in_flight:3} in flight: {what}")

    async def bump(self, change: Callable[[Run], None]) -> None:
        async with self.changed:
            change(self)
            self.changed.notify_all()

    async def until(self, predicate: Callable[[], bool], what: str, *, timeout_seconds: float | None = None) -> None:
        """Wait for `predicate`; without a timeout only the run's own bounds it."""
        try:
            async with asyncio.timeout(timeout_seconds), self.changed:
                await self.changed.wait_for(predicate)
        except TimeoutError:
            raise AssertionError(f"stuck waiting for {what} ({self.stage}; done {self.done}/{TASKS})") from None


def _add(name: str, amount: int) -> Callable[[Run], None]:
    return lambda run: setattr(run, name, getattr(run, name) + amount)


async def _submit(remote: RemoteOrchestrator, run: Run, n: int, millis: int) -> AsyncTaskHandle:
    """Submit task `n` until the daemon accepts it: the same key each time, so it is accepted once."""
    while True:
        await run.bump(_add("submit_calls", 1))
        try:
            return await remote.execute_task(
                "work",
                {"n": n, "millis": millis},
                timeout_seconds=TASK_TIMEOUT_SECONDS,
                idempotency_key=f"chaos-{n}",
                retry_policy=POLICY,
            )
        except OrchestratorUnavailableError:
            run.resent.add(n)
            await run.bump(_add("unavailable", 1))
        except NoWorkerError:
            if run.task_ids:  # before the first acceptance it only means the daemon has not seen a worker yet
                await run.bump(_add("no_worker", 1))
        await asyncio.sleep(0.1)  # back-off before sending the same submission again


async def _follow(remote: RemoteOrchestrator, run: Run, handle: AsyncTaskHandle) -> TaskUpdate:
    """The final update, following the task again whenever the handle lost the daemon."""
    while True:
        try:
            return await handle.wait()
        except OrchestratorUnavailableError:  # the handle lost the daemon: follow the task again
            await run.bump(_add("rewatches", 1))
        await asyncio.sleep(0.2)
        with contextlib.suppress(OrchestratorUnavailableError):
            handle = await remote.watch(handle.task_id)


async def _submitter(remote: RemoteOrchestrator, run: Run, durations: list[int], group: asyncio.TaskGroup) -> None:
    """Starts task n once fewer than `run.allowed` are unfinished; each is submitted and followed on its own."""
    for n, millis in enumerate(durations):
        await run.until(lambda n=n: n < run.done + run.allowed, f"a submission window for task {n}")
        run.submitted = n + 1
        group.create_task(_task(remote, run, n, millis), name=f"chaos-{n}")


async def _task(remote: RemoteOrchestrator, run: Run, n: int, millis: int) -> None:
    handle = await _submit(remote, run, n, millis)
    run.task_ids[n] = handle.task_id
    run.finals[n] = await _follow(remote, run, handle)
    await run.bump(_add("done", 1))


async def _running_on(remote: RemoteOrchestrator, worker_id: str) -> list[str]:
    """Tasks the daemon has running on `worker_id`; waits until there is one."""
    async with asyncio.timeout(STEP_SECONDS):
        while True:
            running = await remote.tasks(status=TaskStatus.RUNNING, capability="work", limit=TASKS)
            ids = [r.task_id for r in running if r.attempts and r.attempts[-1].worker_id == worker_id]
            if ids:
                return ids
            await asyncio.sleep(POLL_SECONDS)


async def _frozen_while_running(remote: RemoteOrchestrator, worker: Daemon) -> list[str]:
    """SIGSTOPs `worker` while the daemon has a task running on it; the tasks it froze.

    Frozen first, then asked: a task the daemon saw running a moment before could otherwise end on it in between
    (on a busy machine that moment is long), leaving nothing for the fault to interrupt.
    """
    async with asyncio.timeout(STEP_SECONDS):
        while True:
            await _running_on(remote, worker.worker_id)
            worker.process.send_signal(signal.SIGSTOP)
            running = await remote.tasks(status=TaskStatus.RUNNING, capability="work", limit=TASKS)
            ids = [r.task_id for r in running if r.attempts and r.attempts[-1].worker_id == worker.worker_id]
            if ids:
                return ids
            worker.process.send_signal(signal.SIGCONT)  # it ended them just before: another try


async def _evicted(registry_address: str, worker_id: str) -> None:
    """Returns once the registry evicted `worker_id`: its LEFT event, or its absence once the watch synced.

    (Its absence from `list_workers` is not enough: that hides a worker past its TTL before the sweep evicts
    it, and a heartbeat in between makes it active again.)
    """
    client = RegistryClient(registry_address)
    try:
        async with asyncio.timeout(STEP_SECONDS):
            while True:
                present, synced = False, False
                try:
                    async for event in client.watch():
                        if event.type is WorkerEventType.SYNCED:
                            synced = True
                        elif event.worker is None or event.worker.worker_id != worker_id:
                            continue
                        elif event.type is WorkerEventType.LEFT:
                            return
                        else:
                            present = True
                        if synced and not present:
                            return
                except RegistryUnavailableError:
                    await asyncio.sleep(POLL_SECONDS)
    finally:
        await client.aclose()


@dataclass
class Faults:
    killed: Daemon
    stopped: Daemon
    killed_running: list[str] = field(default_factory=list)
    stopped_running: list[str] = field(default_factory=list)


async def _inject(
    start: Start, remote: RemoteOrchestrator, run: Run, registry: Daemon, daemon: Daemon, daemon_args: tuple[str, ...],
    faults: Faults,
) -> None:  # fmt: skip
    async def at(fraction: float) -> None:
        await run.until(lambda: run.done >= int(TASKS * fraction), f"{fraction:.0%} of the tasks done")

    await at(0.10)
    faults.killed_running = await _running_on(remote, faults.killed.worker_id)
    await faults.killed.stop(signal.SIGKILL)
    run.note(f"SIGKILLed worker {faults.killed.worker_id} running {len(faults.killed_running)}")

    await at(0.20)
    faults.stopped_running = await _frozen_while_running(remote, faults.stopped)
    run.note(f"SIGSTOPped worker {faults.stopped.worker_id} running {len(faults.stopped_running)}")
    try:
        await _evicted(registry.address, faults.stopped.worker_id)
        run.note("the registry evicted it")
    finally:
        faults.stopped.process.send_signal(signal.SIGCONT)
    run.note("SIGCONTed it")

    await at(0.45)
    await registry.stop(signal.SIGKILL)
    run.note("SIGKILLed the registry")
    await start("registry", "--port", str(registry.port), *FAST_REGISTRY)
    run.note("registry back on its port")

    await at(0.65)
    # Let a burst of submissions start and kill the daemon under them: some are accepted without the client
    # hearing it, and must not be accepted twice when sent again with their key.
    accepted = len(run.task_ids)
    await run.bump(_add("allowed", WINDOW // 2))
    await run.until(lambda: len(run.task_ids) > accepted, "a submission accepted", timeout_seconds=STEP_SECONDS)
    await daemon.stop(signal.SIGKILL)
    run.killed_at = datetime.now(UTC)
    run.note("SIGKILLed the daemon")
    unavailable = run.unavailable
    await run.bump(_add("allowed", WINDOW // 2))
    if run.submitted + WINDOW // 2 < TASKS:  # new submissions while it is down meet the outage
        await run.until(
            lambda: run.unavailable > unavailable, "a submission to the dead daemon", timeout_seconds=STEP_SECONDS
        )
    await start(*daemon_args, "--port", str(daemon.port))
    run.note("daemon back on its port from its store")


async def _records(remote: RemoteOrchestrator, task_ids: dict[int, str]) -> dict[int, TaskRecord]:
    """The daemon's record of every task, once all are terminal there."""
    records: dict[int, TaskRecord] = {}
    async with asyncio.timeout(STEP_SECONDS):
        while True:
            for n, task_id in task_ids.items():
                if n not in records or not records[n].status.is_terminal:
                    records[n] = await remote.task(task_id)
            if all(r.status.is_terminal for r in records.values()):
                return records
            await asyncio.sleep(0.2)


async def _unfinished(remote: RemoteOrchestrator, run: Run) -> str:
    """What the daemon says of the tasks the client is still waiting for (to explain a hang)."""
    lines = [f"not accepted: {sorted(set(range(run.submitted)) - set(run.task_ids))[:20]}"]
    for n in sorted(set(run.task_ids) - set(run.finals))[:20]:
        try:
            async with asyncio.timeout(5):
                record = await remote.task(run.task_ids[n])
            lines.append(f"task {n} ({record.task_id}): {record.status.name}, attempts {record.attempts}")
        except (TimeoutError, WorkerAbstractionError) as error:
            lines.append(f"task {n} ({run.task_ids[n]}): the daemon does not say: {error!r}")
    return "\n".join(lines)


def _problems(run: Run, records: dict[int, TaskRecord], listed: list[TaskRecord], faults: Faults) -> list[str]:
    problems: list[str] = []
    if len(run.task_ids) != TASKS:
        problems.append(f"only {len(run.task_ids)} of {TASKS} tasks were accepted")
    if len(set(run.task_ids.values())) != len(run.task_ids):
        problems.append("two idempotency keys got the same task id")
    extra = sorted({r.task_id for r in listed} - set(run.task_ids.values()))
    if extra or len(listed) != len({r.task_id for r in listed}):
        problems.append(f"the daemon lists {len(listed)} 'work' tasks for {TASKS} submissions; unknown: {extra[:10]}")
    for n, record in sorted(records.items()):
        where = f"task {n} ({record.task_id})"
        attempts = "; ".join(
            f"#{a.number} on {a.worker_id}: {a.status.name} {a.error_message!r}" for a in record.attempts
        )
        if record.last_update is not None:
            last = record.last_update
            attempts += f"; final update {last.status.name} from #{last.attempt} on {last.worker_id}"
        if record.status is not TaskStatus.COMPLETED:
            problems.append(f"{where} ended {record.status.name}: {record.error_message!r}; attempts: {attempts}")
            continue
        if record.output != expected_output(n):
            problems.append(f"{where} output {record.output!r}, expected {expected_output(n)!r}")
        numbers = [a.number for a in record.attempts]
        # Strictly increasing: never reused. (They start at 1; a task resumed after the daemon's crash goes on
        # past the numbers it had reserved, any of which may have been sent before the crash.)
        if not numbers or numbers[0] < 1 or any(b <= a for a, b in itertools.pairwise(numbers)):
            problems.append(f"{where} attempt numbers do not grow: {attempts}")
        if [a.status for a in record.attempts].count(TaskStatus.COMPLETED) != 1 or (
            record.attempts and record.attempts[-1].status is not TaskStatus.COMPLETED
        ):
            problems.append(f"{where} has not exactly one COMPLETED attempt, the last: {attempts}")
        if any(a.ended_at is None or not a.status.is_terminal for a in record.attempts):
            problems.append(f"{where} has an attempt that never ended: {attempts}")
        last = record.last_update
        if last is None or (record.attempts and last.attempt and last.attempt != record.attempts[-1].number):
            problems.append(f"{where} final update is not from its last attempt: {last}; attempts: {attempts}")
        final = run.finals.get(n)
        if final is None or final.status is not record.status or final.output != record.output:
            problems.append(f"{where} the client saw {final} but the daemon holds {record.status.name}")
    for fault, running in (("SIGKILLed", faults.killed_running), ("SIGSTOPped", faults.stopped_running)):
        worker_id = (faults.killed if fault == "SIGKILLed" else faults.stopped).worker_id
        failed = [
            r for r in records.values()
            if any(a.worker_id == worker_id and a.status is not TaskStatus.COMPLETED for a in r.attempts)
        ]  # fmt: skip
        if not failed:
            problems.append(f"no failed attempt recorded on the {fault} worker {worker_id} (it ran {running})")
        problems += [f"task {r.task_id} failed on the {fault} worker but was not retried" for r in failed
                     if len(r.attempts) < 2]  # fmt: skip
    return problems


@pytest.fixture
def wa(start: Start) -> Start:
    """`start`, with WA_CHAOS_LOG_LEVEL passed on to every process."""
    logging = ("--log-level", LOG_LEVEL) if LOG_LEVEL else ()

    async def _start(*args: str) -> Daemon:
        return await start(*args, *logging)

    return _start


@pytest.mark.chaos
@pytest.mark.timeout(RUN_SECONDS + 60)
async def test_every_task_ends_once_and_right_through_kills_stops_and_restarts(wa: Start, tmp_path: Path) -> None:
    store = tmp_path / "tasks.db"
    rng = random.Random(SEED)
    durations = [rng.randint(MIN_MS, MAX_MS) for _ in range(TASKS)]
    registry = await wa("registry", "--port", "0", *FAST_REGISTRY)
    worker_args = ("--port", "0", "--registry", registry.address, "--max-concurrent", str(SLOTS), *FAST_WORKER)
    # One at a time: `start` names each stderr file when it is called, so concurrent starts share one.
    workers = [await wa("worker", "_chaos_workers:ChaosWorker", *worker_args) for _ in range(WORKERS)]
    daemon_args = ("orchestrator", "--registry", registry.address, "--store", str(store))
    daemon = await wa(*daemon_args, "--port", "0")
    run, faults = Run(), Faults(killed=workers[0], stopped=workers[1])
    print(f"\nchaos: {TASKS} tasks of {MIN_MS}-{MAX_MS} ms (seed {SEED}), {WORKERS}x{SLOTS} slots; logs in {tmp_path}")

    async with RemoteOrchestrator(daemon.address) as remote:
        try:
            async with asyncio.timeout(RUN_SECONDS), asyncio.TaskGroup() as group:
                group.create_task(_submitter(remote, run, durations, group), name="submitter")
                group.create_task(_inject(wa, remote, run, registry, daemon, daemon_args, faults), name="faults")
        except TimeoutError:
            raise AssertionError(
                f"the run did not finish in {RUN_SECONDS:.0f}s ({run.stage}; done {run.done}/{TASKS}); logs in "
                f"{tmp_path}; events:\n" + "\n".join(run.events) + "\nunfinished:\n" + await _unfinished(remote, run)
            ) from None
        elapsed = run.elapsed()
        records = await _records(remote, run.task_ids)
        listed = await remote.tasks(capability="work", limit=2 * TASKS)

    attempts = sum(len(r.attempts) for r in records.values())
    retried = sum(len(r.attempts) > 1 for r in records.values())
    completed = sum(r.status is TaskStatus.COMPLETED for r in records.values())
    # Sent again after the kill, yet accepted before it: the key kept the answer the client never heard.
    unheard = sum(
        1 for n in run.resent
        if run.killed_at and records[n].submitted_at and records[n].submitted_at < run.killed_at
    )  # fmt: skip
    print("\n".join(run.events))
    print(
        f"chaos: {TASKS} tasks, {completed} completed, {retried} retried, {attempts} attempts, {elapsed:.1f}s; "
        f"submissions sent again: {run.unavailable} (daemon down: {len(run.resent)} tasks, {unheard} of them "
        f"accepted before the kill), {run.no_worker} (no worker); "
        f"handles reopened: {run.rewatches}"
    )
    problems = _problems(run, records, listed, faults)
    assert not problems, f"{len(problems)} problem(s); logs in {tmp_path}:\n" + "\n".join(problems[:50])
