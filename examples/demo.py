"""`make demo`: a registry and three workers as separate processes, then the seed's three scenarios.

The demo starts `wa registry` and three `wa worker` processes (two SeedWorkers, one TextStatsWorker), waits
until the orchestrator sees them, and runs the scenarios of the seed's orchestrator (design.md section 4.3):

1. `dummy_processor` with {"input": "hello world"} completes with "Processed: HELLO WORLD";
2. `error_simulator` fails with the worker's error message;
3. `unsupported_tool` is refused because no worker offers it;

plus one `text_stats` call. It stops every process it started, also on Ctrl-C, and exits 0 only when every
scenario behaved as expected (1 when one did not, 2 when the processes could not be started, 130 when
interrupted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker_abstraction import (
    AsyncOrchestrator,
    AsyncTaskHandle,
    NoWorkerError,
    TaskFailedError,
    TaskStatus,
    WorkerAbstractionError,
    WorkerInfo,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 30.0
TASK_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
SEED_ERROR = "Simulated error during task execution."

WORKERS: tuple[tuple[str, str], ...] = (
    ("seed-1", "examples.seed_worker:SeedWorker"),
    ("seed-2", "examples.seed_worker:SeedWorker"),
    ("text-stats", "examples.text_stats:TextStatsWorker"),
)

_REGISTRY_READY = re.compile(r"^registry listening on (\S+)$")
_WORKER_READY = re.compile(r"^worker (\S+) listening on (\S+)$")


class SetupError(Exception):
    """A process of the demo could not be started."""


@dataclass
class Child:
    """One process the demo started, with the last lines it wrote (shown when something goes wrong)."""

    label: str
    process: asyncio.subprocess.Process
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=15))
    drains: list[asyncio.Task[None]] = field(default_factory=list)
    worker_id: str = ""
    address: str = ""


@dataclass
class Outcome:
    """Whether one scenario behaved as expected."""

    name: str
    ok: bool
    detail: str


# Every child ever started, so the last-resort cleanup in main() can find them even if the loop is gone.
_STARTED: list[Child] = []


def heading(text: str) -> None:
    print(f"\n{text}\n{'-' * len(text)}", flush=True)


def say(text: str = "") -> None:
    print(text, flush=True)


async def _drain(stream: asyncio.StreamReader | None, child: Child) -> None:
    # Reading to EOF keeps the child from blocking on a full pipe; the tail is kept for error reports.
    if stream is None:
        return
    while line := await stream.readline():
        child.tail.append(line.decode(errors="replace").rstrip())


async def start_child(label: str, *args: str, ready: re.Pattern[str]) -> tuple[Child, re.Match[str]]:
    """Start `python -m worker_abstraction.cli ARGS` and wait for its readiness line.

    Raises:
        SetupError: The process exited or printed no readiness line within the startup timeout.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The workers import `examples.*`, so the repository root must be importable whatever the caller's cwd.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker_abstraction.cli",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # A session of its own: Ctrl-C reaches only the demo, which then stops the workers before the
        # registry, so the workers can deregister cleanly.
        start_new_session=True,
    )
    child = Child(label, process)
    _STARTED.append(child)
    child.drains.append(asyncio.create_task(_drain(process.stderr, child)))
    assert process.stdout is not None
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
            while raw := await process.stdout.readline():
                line = raw.decode(errors="replace").strip()
                child.tail.append(line)
                if match := ready.match(line):
                    child.drains.append(asyncio.create_task(_drain(process.stdout, child)))
                    return child, match
    except TimeoutError:
        raise SetupError(f"{label} printed no readiness line within {STARTUP_TIMEOUT_SECONDS:g}s") from None
    code = await process.wait()
    raise SetupError(f"{label} exited with code {code} before it was ready")


async def stop_child(child: Child) -> int:
    """Terminate a child, kill it if it outlives the deadline, and return its exit code."""
    process = child.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    for drain in child.drains:
        drain.cancel()
    await asyncio.gather(*child.drains, return_exceptions=True)
    assert process.returncode is not None
    return process.returncode


async def stop_all(workers: list[Child], registry: Child | None) -> None:
    # Workers first: a worker deregisters on SIGTERM, which needs the registry still up.
    codes = await asyncio.gather(*(stop_child(w) for w in workers))
    stopped = list(zip(workers, codes, strict=True))
    if registry is not None:
        stopped.append((registry, await stop_child(registry)))
    unclean = [f"{child.label} (exit {code})" for child, code in stopped if code != 0]
    count = f"{len(stopped)} process" + ("" if len(stopped) == 1 else "es")
    say(f"Stopped {count}" + (f"; not cleanly: {', '.join(unclean)}" if unclean else "."))


def show_tails(children: list[Child]) -> None:
    for child in children:
        if child.tail:
            say(f"  last output of {child.label}:")
            for line in child.tail:
                say(f"    | {line}")


def describe_worker(worker_id: str, children: Mapping[str, Child]) -> str:
    child = children.get(worker_id)
    label = child.label if child else "?"
    return f"{label} (worker {worker_id[:8]} at {child.address if child else '?'})"


def print_workers(workers: list[WorkerInfo], children: Mapping[str, Child]) -> None:
    say(f"  {'PROCESS':<11} {'WORKER':<9} {'ADDRESS':<22} CAPABILITIES")
    for info in sorted(workers, key=lambda w: children[w.worker_id].label if w.worker_id in children else ""):
        child = children.get(info.worker_id)
        caps = ", ".join(c.name for c in info.capabilities)
        say(f"  {child.label if child else '?':<11} {info.worker_id[:8]:<9} {info.address:<22} {caps}")


async def run_task(
    orch: AsyncOrchestrator, capability: str, params: Mapping[str, Any], children: Mapping[str, Child]
) -> AsyncTaskHandle:
    """Submit a task, print which worker took it and every update until the terminal one."""
    handle = await orch.execute_task(capability, dict(params), timeout_seconds=TASK_TIMEOUT_SECONDS)
    say(f"  task {handle.task_id[:8]} taken by {describe_worker(handle.worker_id, children)}")
    async for update in handle:
        line = f"    #{update.sequence} {update.status.name}"
        if update.status is TaskStatus.RUNNING and (update.progress or update.progress_message):
            line += f"  {update.progress:4.0%} {update.progress_message}".rstrip()
        if update.error_message:
            line += f"  error: {update.error_message}"
        say(line)
    return handle


async def scenario_success(orch: AsyncOrchestrator, children: Mapping[str, Child]) -> Outcome:
    heading('Scenario 1: dummy_processor {"input": "hello world"} (should complete)')
    handle = await run_task(orch, "dummy_processor", {"input": "hello world"}, children)
    output = await handle.result()
    say(f"  output: {json.dumps(output)}")
    expected = "Processed: HELLO WORLD"
    ok = isinstance(output, dict) and output.get("result") == expected
    return Outcome("success", ok, f'COMPLETED with "{expected}"' if ok else f"unexpected output {output!r}")


async def scenario_failure(orch: AsyncOrchestrator, children: Mapping[str, Child]) -> Outcome:
    heading("Scenario 2: error_simulator {} (should fail)")
    handle = await run_task(orch, "error_simulator", {}, children)
    try:
        output = await handle.result()
    except TaskFailedError as exc:
        say(f"  TaskFailedError: {exc.error_message}")
        ok = SEED_ERROR in exc.error_message
        return Outcome("failure", ok, "FAILED with the worker's message" if ok else "FAILED, wrong message")
    return Outcome("failure", False, f"expected FAILED, got output {output!r}")


async def scenario_unsupported(orch: AsyncOrchestrator, children: Mapping[str, Child]) -> Outcome:
    heading('Scenario 3: unsupported_tool {"data": [1, 2, 3]} (should be refused)')
    try:
        handle = await orch.execute_task("unsupported_tool", {"data": [1, 2, 3]})
    except NoWorkerError as exc:
        say(f"  refused before any worker was contacted: NoWorkerError: {exc}")
        return Outcome("unsupported", True, "refused with NoWorkerError")
    taker = describe_worker(handle.worker_id, children)
    return Outcome("unsupported", False, f"unexpectedly sent to {taker}")


async def scenario_text_stats(orch: AsyncOrchestrator, children: Mapping[str, Child]) -> Outcome:
    text = "Workers join. Workers leave! The orchestrator keeps track of the workers"
    heading("Bonus: text_stats on a three-sentence text (a plain `def` capability)")
    say(f"  text: {text!r}")
    handle = await run_task(orch, "text_stats", {"text": text}, children)
    output = await handle.result()
    say(f"  output: {json.dumps(output)}")
    ok = isinstance(output, dict) and output.get("sentences") == 3 and output.get("words") == 11
    return Outcome("text stats", ok, "11 words, 3 sentences" if ok else f"unexpected output {output!r}")


Scenario = Callable[[AsyncOrchestrator, Mapping[str, Child]], Awaitable[Outcome]]
SCENARIOS: tuple[tuple[str, Scenario], ...] = (
    ("success", scenario_success),
    ("failure", scenario_failure),
    ("unsupported", scenario_unsupported),
    ("text stats", scenario_text_stats),
)


async def run_scenarios(registry_address: str, children: Mapping[str, Child]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    async with AsyncOrchestrator(registry_address) as orch:
        say("\nWaiting until the orchestrator sees the workers...")
        await orch.wait_for_workers("dummy_processor", count=2, timeout_seconds=STARTUP_TIMEOUT_SECONDS)
        await orch.wait_for_workers("text_stats", count=1, timeout_seconds=STARTUP_TIMEOUT_SECONDS)
        print_workers(await orch.workers(), children)
        for name, scenario in SCENARIOS:
            try:
                outcome = await scenario(orch, children)
            except WorkerAbstractionError as exc:
                outcome = Outcome(name, False, f"{type(exc).__name__}: {exc}")
            say(f"  -> {'as expected' if outcome.ok else 'NOT as expected'}: {outcome.detail}")
            outcomes.append(outcome)
    return outcomes


async def start_worker(label: str, target: str, registry_address: str) -> Child:
    args = ("worker", target, "--host", "127.0.0.1", "--port", "0", "--registry", registry_address)
    child, ready = await start_child(label, *args, ready=_WORKER_READY)
    child.worker_id, child.address = ready[1], ready[2]
    say(f"  {label:<11} worker {child.worker_id[:8]} listening on {child.address}  ({target})")
    return child


async def demo() -> int:
    heading("worker-abstraction demo: one registry, three workers, the seed's three scenarios")
    registry: Child | None = None
    workers: list[Child] = []
    try:
        say("Starting processes (python -m worker_abstraction.cli ...)")
        registry, match = await start_child(
            "registry", "registry", "--host", "127.0.0.1", "--port", "0", ready=_REGISTRY_READY
        )
        registry.address = match[1]
        say(f"  {'registry':<11} listening on {registry.address}")
        # return_exceptions: every start must have finished (ready or failed) before the clean-up runs,
        # or a process could be spawned after it.
        started = await asyncio.gather(
            *(start_worker(label, target, registry.address) for label, target in WORKERS),
            return_exceptions=True,
        )
        workers = [c for c in started if isinstance(c, Child)]
        if errors := [e for e in started if isinstance(e, BaseException)]:
            raise errors[0]
        outcomes = await run_scenarios(registry.address, {w.worker_id: w for w in workers})
    except (SetupError, WorkerAbstractionError) as exc:
        say(f"\nThe demo could not get going: {type(exc).__name__}: {exc}")
        show_tails(_STARTED)
        return 2
    finally:
        heading("Stopping everything the demo started")
        # Children spawned but never ready are in _STARTED only; they are stopped with the workers.
        others = [c for c in _STARTED if c is not registry and c not in workers]
        stopping = asyncio.ensure_future(stop_all([*workers, *others], registry))
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            # Ctrl-C while cleaning up: finish the clean-up anyway (a second Ctrl-C kills everything).
            await stopping
            raise

    heading("Summary")
    for outcome in outcomes:
        say(f"  [{'ok' if outcome.ok else 'FAIL'}] {outcome.name:<12} {outcome.detail}")
    if all(o.ok for o in outcomes):
        say("\nAll scenarios behaved as expected.")
        return 0
    say("\nSome scenarios did not behave as expected; the last output of each process follows.")
    show_tails(_STARTED)
    return 1


async def _main() -> int:
    # SIGTERM (e.g. from a test runner's timeout) takes the same path as Ctrl-C: cancel, then clean up.
    task = asyncio.current_task()
    assert task is not None
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await demo()


def main() -> int:
    try:
        return asyncio.run(_main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("\nInterrupted.")
        return 130
    finally:
        # Last resort when the clean-up itself was interrupted (a second Ctrl-C): nothing may outlive us.
        for child in _STARTED:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
