"""Scenario 9's caller: delayed tasks and retention through an orchestrator daemon, as a caller program does.

    python -m bench.time_caller WHAT ADDRESS MODE WORKERS

It prints `caller ready` once the workers are there, `wait KIND` where the bench measures something and
waits for `go` on its stdin, `phase NAME` at the steps the bench follows, and at the end one `result JSON`
line. WHAT is one of:

- `delayed`: `wait idle` (the bench reads the idle daemon's CPU); then `firing` rounds: `firing_tasks` no-op
  tasks whose not_before (an absolute instant) is spread evenly over `firing_spread_seconds` from
  `firing_lead_seconds` on, submitted at once, awaited, and their records read: each one's lateness is its
  first attempt's start (the daemon's dispatch) less its not_before; a warm-up round first. Then
  `delayed_tasks` no-op tasks with a delay of `delayed_seconds`, submitted at 256 in flight through a
  connection closed once they are in (nobody follows them, as after `wa submit --delay`), `phase submitted
  JSON` (how many, how long it took, and the earliest instant one can be due, on CLOCK_MONOTONIC), `wait
  waiting` (the bench reads the daemon's CPU and RSS while they wait), and each is followed to its end.
- `fill`: `retention_filled_tasks` no-op tasks at 256 in flight (the store then holds them finished).
- `sweep`: sequential no-op tasks (submit, then the result); `phase baseline done` after
  `retention_baseline_tasks` of them, and on until the bench, which runs a sweep meanwhile, sends its span
  (`span BEGAN ENDED` on CLOCK_MONOTONIC): then the p50, p99 and max of the tasks that ended before it, and
  of those that overlapped it.
- `steady`: `retention_steady_rounds` rounds of `retention_steady_tasks` no-op tasks at 256 in flight, with
  `wait round` after each (the bench runs a sweep and reads the store's size).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import worker_abstraction  # noqa: F401  (before anything loads gRPC, as in a caller program)
from bench.caller import PHASE, READY, RESULT, _say, _system_clock, _wait_for_go
from bench.config import CONFIGS, Config
from bench.loops import run
from bench.measure import Errors, percentile, throughput
from bench.time_figures import lateness, lateness_ms, split_by_span
from worker_abstraction import AsyncTaskHandle, RemoteOrchestrator

NOOP = "noop"
IN_FLIGHT = 256
SUBMITTED = PHASE + "submitted "  # then a JSON object
SPAN = "span "  # then a sweep's start and end on CLOCK_MONOTONIC: the bench's answer to `sweep`
_LONGEST_SAMPLING_SECONDS = 900.0  # `sweep` stops by itself after this long without the bench's `go`
_FIRING_WARMUP_TASKS = 20


async def delayed(remote: RemoteOrchestrator, address: str, config: Config, errors: Errors) -> dict[str, Any]:
    await _wait_for_go("idle")
    rounds = []
    _say(PHASE + "firing")
    await firing_round(remote, min(_FIRING_WARMUP_TASKS, config.firing_tasks), config, errors)
    for _ in range(config.rounds):
        rounds.append(await firing_round(remote, config.firing_tasks, config, errors))
    _say(PHASE + "firing done")
    await _wait_for_go("delayed")
    # A connection of its own, closed once they are in: the daemon holds the tasks, and no caller follows them.
    began = _system_clock()
    async with RemoteOrchestrator(address) as submitting:
        task_ids = await _submit_delayed(submitting, config, errors)
    seconds = _system_clock() - began
    submitted = {"tasks": len(task_ids), "seconds": seconds, "earliest_due": began + config.delayed_seconds}
    _say(SUBMITTED + json.dumps(submitted))
    await _wait_for_go("waiting")
    finished = await _follow(remote, task_ids, errors)
    return {"firing": rounds, "delayed": submitted | {"finished": finished}}


async def firing_round(remote: RemoteOrchestrator, tasks: int, config: Config, errors: Errors) -> dict[str, Any]:
    """One round of delayed tasks due at spread instants: each one's lateness, and the round's figures."""
    first = datetime.now(UTC) + timedelta(seconds=config.firing_lead_seconds)
    step = config.firing_spread_seconds / max(tasks - 1, 1)
    due = [first + timedelta(seconds=i * step) for i in range(tasks)]
    handles = await asyncio.gather(*(remote.execute_task(NOOP, {}, not_before=when) for when in due))
    if datetime.now(UTC) >= first:
        raise RuntimeError(f"submitting {tasks} delayed tasks took past the first one's not_before")
    samples = []
    for handle, when in zip(handles, due, strict=True):
        try:
            await handle.result(timeout_seconds=60)
            record = await remote.task(handle.task_id)
        except Exception as error:
            errors.record(error)
            continue
        if not record.attempts:
            raise RuntimeError(f"task {handle.task_id} finished with no attempt")
        samples.append(lateness_ms(when, record.attempts[0].started_at))
    found = lateness(samples)
    return {
        "p50_ms": found.p50_ms,
        "p99_ms": found.p99_ms,
        "max_ms": found.max_ms,
        "min_ms": found.min_ms,
        "early": found.early,
        "tasks": found.count,
        "lateness_ms": [round(late, 3) for late in samples],
    }


async def _submit_delayed(remote: RemoteOrchestrator, config: Config, errors: Errors) -> list[str]:
    task_ids: list[str] = []
    pending = config.delayed_tasks

    async def submitter() -> None:
        nonlocal pending
        while pending > 0:
            pending -= 1
            try:
                task_ids.append((await remote.execute_task(NOOP, {}, delay_seconds=config.delayed_seconds)).task_id)
            except Exception as error:
                errors.record(error)

    await asyncio.gather(*(submitter() for _ in range(IN_FLIGHT)))
    return task_ids


async def _follow(remote: RemoteOrchestrator, task_ids: list[str], errors: Errors) -> int:
    """Follow every task to its end (at 256 at once); how many completed."""
    completed = 0
    waiting = list(task_ids)

    async def follower() -> None:
        nonlocal completed
        while waiting:
            task_id = waiting.pop()
            try:
                handle: AsyncTaskHandle = await remote.watch(task_id)
                await handle.result(timeout_seconds=600)
            except Exception as error:
                errors.record(error)
            else:
                completed += 1

    await asyncio.gather(*(follower() for _ in range(IN_FLIGHT)))
    return completed


async def fill(remote: RemoteOrchestrator, config: Config, errors: Errors) -> dict[str, Any]:
    began = time.perf_counter()

    async def noop() -> Any:
        return await (await remote.execute_task(NOOP, {})).result()

    per_second = await throughput(noop, config.retention_filled_tasks, IN_FLIGHT, errors)
    return {"tasks": config.retention_filled_tasks, "seconds": time.perf_counter() - began, "per_s": per_second}


async def sweep(remote: RemoteOrchestrator, config: Config, errors: Errors) -> dict[str, Any]:
    """Sequential tasks until the bench sends the sweep's span (`span BEGAN ENDED`, on CLOCK_MONOTONIC): the
    figures of those before it and of those during it (`split_by_span`)."""
    samples: list[tuple[float, float]] = []
    told = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
    deadline = _system_clock() + _LONGEST_SAMPLING_SECONDS
    said = False
    while not told.done() and _system_clock() < deadline:
        began = _system_clock()
        try:
            await (await remote.execute_task(NOOP, {})).result(timeout_seconds=60)
        except Exception as error:
            errors.record(error)
            continue
        samples.append((began, _system_clock() - began))
        if not said and len(samples) >= config.retention_baseline_tasks:
            _say(PHASE + "baseline done")
            said = True
    if not told.done():
        raise RuntimeError(f"the bench said nothing for {_LONGEST_SAMPLING_SECONDS:g}s")
    word, began, ended = (await told).split()
    if word != SPAN.strip():
        raise RuntimeError(f"the bench said {word!r}, not {SPAN.strip()!r}")
    split = split_by_span(samples, float(began), float(ended))
    slowest = max((sample for sample in samples if sample[0] < float(ended)), key=lambda sample: sample[1])
    return {
        "before": _latency_figures(split.before),
        "during": _latency_figures(split.during),
        # where the slowest task before the sweep's end began, from the sweep's start (s): a stall's place
        "slowest_began_after_sweep": slowest[0] - float(began),
    }


def _latency_figures(samples: list[float]) -> dict[str, Any]:
    """p50, p99 and max in microseconds, and how many (None for none)."""
    if not samples:
        return {"tasks": 0, "p50_us": None, "p99_us": None, "max_us": None}
    return {
        "tasks": len(samples),
        "p50_us": percentile(samples, 50) * 1e6,
        "p99_us": percentile(samples, 99) * 1e6,
        "max_us": max(samples) * 1e6,
    }


async def steady(remote: RemoteOrchestrator, config: Config, errors: Errors) -> dict[str, Any]:
    async def noop() -> Any:
        return await (await remote.execute_task(NOOP, {})).result()

    per_second = []
    for _ in range(config.retention_steady_rounds):
        per_second.append(await throughput(noop, config.retention_steady_tasks, IN_FLIGHT, errors))
        await _wait_for_go("round")
    return {"per_s": per_second}


async def main_async(arguments: argparse.Namespace) -> dict[str, Any]:
    config = CONFIGS[arguments.mode]
    errors = Errors()
    async with RemoteOrchestrator(arguments.address) as remote:
        await remote.wait_for_workers(NOOP, count=arguments.workers, timeout_seconds=30)
        _say(READY)
        if arguments.what == "delayed":
            found = await delayed(remote, arguments.address, config, errors)
        else:
            found = await {"fill": fill, "sweep": sweep, "steady": steady}[arguments.what](remote, config, errors)
    return found | {"errors": dict(errors.counts), "error_examples": errors.examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("delayed", "fill", "sweep", "steady"))
    parser.add_argument("address")
    parser.add_argument("mode", choices=sorted(CONFIGS))
    parser.add_argument("workers", type=int)
    arguments = parser.parse_args()
    found = run(main_async(arguments))
    _say(PHASE + "done")
    _say(RESULT + json.dumps(found))


if __name__ == "__main__":
    main()
