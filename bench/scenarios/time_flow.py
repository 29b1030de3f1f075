"""Scenario 9: time and flow control through an orchestrator daemon on SQLite: delayed tasks and retention
(`bench/time_caller.py` says what the caller does at each step).

With the registry and the two `NoopWorker` processes of the other scenarios:

- (9a) delayed tasks cost no CPU while they wait. `wa orchestrator` with its SQLite store: its CPU over
  `delayed_window_seconds` while it is idle (no task yet), `delayed_idle_cpu_share` (CPU seconds per second),
  then over as long with `delayed_tasks` tasks waiting out a delay of `delayed_seconds` (submitted through a
  connection closed once they are in, read a second after), `delayed_waiting_cpu_share`, and its RSS at the end
  of each window (`delayed_idle_rss_mb`, `delayed_waiting_rss_mb`). The window ends before the first of them
  can be due (checked). Then every one is followed to its end.
- (9b) firing accuracy, on the same daemon before (9a)'s tasks: rounds of `firing_tasks` no-op tasks due at
  instants spread over a few seconds; each one's lateness (its first attempt's start, the daemon's dispatch,
  less its not_before): `delayed_lateness_p50_ms` / `_p99_ms` / `_max_ms`, and `_min_ms` (negative: early).
- (9c) a retention sweep beside submissions. `wa orchestrator` runs `retention_filled_tasks` no-op tasks at 256
  in flight (its store then holds them all finished), and stops; `bench.retention_daemon` (the same server,
  `--retention 0`, its sweeps started by the bench) opens the same file. Sequential no-op tasks (submit, then
  the result): `retention_baseline_tasks` of them before any sweep (`retention_task_p50_us`), then on while one
  sweep drops every finished task (`retention_sweep_task_p50_us`: a task counts if any part of it was inside
  the sweep), `retention_sweep_latency_ratio` the ratio of the two p50s; `retention_sweep_seconds` how long
  the sweep took and `retention_swept_tasks` how many it dropped.
- (9d) the store under steady load with retention 0: a fresh store, `retention_steady_rounds` rounds of
  `retention_steady_tasks` no-op tasks at 256 in flight with a sweep after each; the database's size after
  each round's sweep (`retention_steady_db_mib_round_N`: pages × page size, what the file holds once the log
  is folded in) and `retention_steady_growth_mib`, the last round's less the first's (the files on disk and
  the free pages under `details`).

Each figure is one round (filling a store with 100,000 tasks takes a minute; a delay is waited out once),
except (9b)'s, which are `rounds` rounds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import caller as caller_module
from bench import retention_daemon, time_caller
from bench.config import FULL, Config
from bench.measure import Errors, Figure, Results, percentile
from bench.procs import Child, Children, cpu_seconds, rss_mb
from bench.scenarios.daemon import start_daemon
from bench.scenarios.tasks import WORKERS, start_registry, start_worker
from bench.time_figures import cpu_share, growth_after_first, store_size

_CALLER_SECONDS = 900.0  # the longest the caller may say nothing
_SETTLE_SECONDS = 1.0  # after the delayed tasks are in, before their window (the last commits, the collector)
_MIB = 2**20

DELAYED_KEYS = ("delayed_idle_cpu_share", "delayed_waiting_cpu_share", "delayed_idle_rss_mb", "delayed_waiting_rss_mb")
LATENESS_KEYS = tuple(f"delayed_lateness_{name}_ms" for name in ("p50", "p99", "max", "min"))
SWEEP_KEYS = (
    "retention_task_p50_us",
    "retention_task_p99_us",
    "retention_sweep_task_p50_us",
    "retention_sweep_task_p99_us",
    "retention_sweep_seconds",
    "retention_swept_tasks",
)
STEADY_KEYS = (
    *(f"retention_steady_db_mib_round_{n}" for n in range(1, FULL.retention_steady_rounds + 1)),
    "retention_steady_growth_mib",
)
# Figures measured once per run (every key but (9b)'s).
SINGLE_ROUND_KEYS = (*DELAYED_KEYS, *SWEEP_KEYS, *STEADY_KEYS)
FIGURE_KEYS = (*DELAYED_KEYS, *LATENESS_KEYS, *SWEEP_KEYS, *STEADY_KEYS)


async def measure(children: Children, config: Config) -> Results:
    """Scenario 9's figures (see the module's docstring)."""
    results, errors = Results(), Errors()
    details: dict[str, Any] = {}
    registry = await start_registry(children, "time-registry")
    workers = list(
        await asyncio.gather(*(start_worker(children, f"time-worker-{i}", registry.address) for i in range(WORKERS)))
    )
    with tempfile.TemporaryDirectory(prefix="wa-bench-time-") as scratch:
        directory = Path(scratch)
        await _delayed(children, results, details, errors, registry.address, directory / "delayed.db", config)
        await _sweep(children, results, details, errors, registry.address, directory / "filled.db", config)
        await _steady(children, results, details, errors, registry.address, directory / "steady.db", config)
    for child in [*workers, registry]:
        await children.stop(child)
    details["errors"] = dict(errors.counts)
    details["error_examples"] = errors.examples
    results.extras["time_flow"] = details
    return results


async def _delayed(
    children: Children,
    results: Results,
    details: dict[str, Any],
    errors: Errors,
    registry: str,
    path: Path,
    config: Config,
) -> None:
    """(9a) and (9b), on one `wa orchestrator`."""
    figures = results.figures
    daemon = await start_daemon(children, "time-delayed-orchestrator", registry, str(path))
    caller = await _start_caller(children, "time-delayed-caller", "delayed", daemon, config)
    await _expect(caller, caller_module.WAIT + "idle")
    idle = await _cpu_window(daemon.pid, config.delayed_window_seconds)
    figures["delayed_idle_cpu_share"] = Figure((idle["share"],))
    figures["delayed_idle_rss_mb"] = Figure((rss_mb(daemon.pid),))
    await caller.send_line(caller_module.GO)
    await _expect(caller, caller_module.WAIT + "delayed")
    await caller.send_line(caller_module.GO)
    line = await caller.read_line(_CALLER_SECONDS)
    if not line.startswith(time_caller.SUBMITTED):
        raise RuntimeError(f"the caller said {line!r}, expected {time_caller.SUBMITTED!r}")
    submitted = json.loads(line.removeprefix(time_caller.SUBMITTED))
    await _expect(caller, caller_module.WAIT + "waiting")
    await asyncio.sleep(_SETTLE_SECONDS)
    waiting = await _cpu_window(daemon.pid, config.delayed_window_seconds)
    if waiting["ended"] >= submitted["earliest_due"]:
        raise RuntimeError(
            f"the window ended {waiting['ended'] - submitted['earliest_due']:.1f}s after the first delayed task could"
            f" be due: submitting {submitted['tasks']} took {submitted['seconds']:.1f}s of the"
            f" {config.delayed_seconds:g}s delay"
        )
    figures["delayed_waiting_cpu_share"] = Figure((waiting["share"],))
    figures["delayed_waiting_rss_mb"] = Figure((rss_mb(daemon.pid),))
    await caller.send_line(caller_module.GO)
    found = await _result(children, caller, errors)
    rounds = found["firing"]
    for name in ("p50", "p99", "max", "min"):
        figures[f"delayed_lateness_{name}_ms"] = Figure(tuple(one[f"{name}_ms"] for one in rounds))
    every = [late for one in rounds for late in one["lateness_ms"]]
    details["delayed"] = found["delayed"] | {
        "idle_cpu_per_second": idle["per_second"],
        "waiting_cpu_per_second": waiting["per_second"],
        "idle_cpu_share_schedstat": idle["schedstat_share"],
        "waiting_cpu_share_schedstat": waiting["schedstat_share"],
        "window_ended_before_due_seconds": submitted["earliest_due"] - waiting["ended"],
    }
    details["firing"] = {
        "tasks_per_round": config.firing_tasks,
        "lead_seconds": config.firing_lead_seconds,
        "spread_seconds": config.firing_spread_seconds,
        "early": sum(one["early"] for one in rounds),
        "all_rounds_p99_ms": percentile(every, 99) if every else None,
        "rounds": [{key: value for key, value in one.items() if key != "lateness_ms"} for one in rounds],
    }
    await children.stop(daemon)


async def _sweep(
    children: Children,
    results: Results,
    details: dict[str, Any],
    errors: Errors,
    registry: str,
    path: Path,
    config: Config,
) -> None:
    """(9c): fill a store through `wa orchestrator`, then sequential tasks before and during a sweep."""
    figures = results.figures
    filler = await start_daemon(children, "time-fill-orchestrator", registry, str(path))
    caller = await _start_caller(children, "time-fill-caller", "fill", filler, config)
    filled = await _result(children, caller, errors)
    await children.stop(filler)
    filled_size = store_size(path)
    daemon = await _start_retention_daemon(children, "time-sweep-orchestrator", registry, path)
    caller = await _start_caller(children, "time-sweep-caller", "sweep", daemon, config)
    await _expect(caller, caller_module.PHASE + "baseline done")
    swept = await _sweep_now(daemon)
    await caller.send_line(f"{time_caller.SPAN}{swept['began']!r} {swept['ended']!r}")
    found = await _result(children, caller, errors)
    swept["tasks"] = await _swept_tasks(daemon)
    await children.stop(daemon)
    before, during = found["before"], found["during"]
    if not before["tasks"] or not during["tasks"]:
        raise RuntimeError(f"{before['tasks']} tasks before the sweep and {during['tasks']} during it ({swept})")
    figures["retention_task_p50_us"] = Figure((before["p50_us"],))
    figures["retention_task_p99_us"] = Figure((before["p99_us"],))
    figures["retention_sweep_task_p50_us"] = Figure((during["p50_us"],))
    figures["retention_sweep_task_p99_us"] = Figure((during["p99_us"],))
    figures["retention_sweep_seconds"] = Figure((swept["seconds"],))
    figures["retention_swept_tasks"] = Figure((float(swept["tasks"]),))
    details["sweep"] = {
        "filled": filled | {"store": dataclasses.asdict(filled_size)},
        "tasks_before": before["tasks"],
        "tasks_during": during["tasks"],
        "max_before_us": before["max_us"],
        "max_during_us": during["max_us"],
        "slowest_began_after_sweep_seconds": found["slowest_began_after_sweep"],
        "swept_per_s": swept["tasks"] / swept["seconds"] if swept["seconds"] else None,
        "store_after": dataclasses.asdict(store_size(path)),
    }


async def _steady(
    children: Children,
    results: Results,
    details: dict[str, Any],
    errors: Errors,
    registry: str,
    path: Path,
    config: Config,
) -> None:
    """(9d): rounds of tasks on a fresh store with retention 0, a sweep after each, its size after each."""
    daemon = await _start_retention_daemon(children, "time-steady-orchestrator", registry, path)
    caller = await _start_caller(children, "time-steady-caller", "steady", daemon, config)
    rounds: list[dict[str, Any]] = []
    for _ in range(config.retention_steady_rounds):
        await _expect(caller, caller_module.WAIT + "round")
        swept = await _sweep_now(daemon)
        size = store_size(path)
        rounds.append(
            dataclasses.asdict(size) | {"swept": await _swept_tasks(daemon), "sweep_seconds": swept["seconds"]}
        )
        await caller.send_line(caller_module.GO)
    found = await _result(children, caller, errors)
    await children.stop(daemon)
    sizes = [one["database_bytes"] / _MIB for one in rounds]
    for number, size_mib in enumerate(sizes, 1):
        results.figures[f"retention_steady_db_mib_round_{number}"] = Figure((size_mib,))
    results.figures["retention_steady_growth_mib"] = Figure((growth_after_first(sizes),))
    details["steady"] = {"tasks_per_round": config.retention_steady_tasks, "per_s": found["per_s"], "rounds": rounds}


async def _start_caller(children: Children, name: str, what: str, daemon: Child, config: Config) -> Child:
    args = ("-m", "bench.time_caller", what, daemon.address, config.mode, str(WORKERS))
    return await children.start(name, *args, ready_prefix=caller_module.READY, drain=False, stdin=True)


async def _start_retention_daemon(children: Children, name: str, registry: str, path: Path) -> Child:
    args = ("-m", "bench.retention_daemon", "--registry", registry, "--store", str(path), "--retention", "0")
    return await children.start(name, *args, ready_prefix=retention_daemon.READY, drain=False, stdin=True)


async def _sweep_now(daemon: Child) -> dict[str, Any]:
    """Have the daemon run one sweep now: when it began and ended (CLOCK_MONOTONIC), how long it took."""
    swept = await _ask(daemon, retention_daemon.SWEEP, retention_daemon.SWEPT)
    return swept | {"seconds": swept["ended"] - swept["began"]}


async def _swept_tasks(daemon: Child) -> int:
    """How many tasks the daemon's last sweep dropped."""
    return int((await _ask(daemon, retention_daemon.COUNT, retention_daemon.COUNTED))["tasks"])


async def _ask(daemon: Child, command: str, answer: str) -> dict[str, Any]:
    await daemon.send_line(command)
    line = await daemon.read_line(_CALLER_SECONDS)
    if not line.startswith(answer):
        raise RuntimeError(f"{daemon.name} said {line!r}, expected {answer!r}")
    found: dict[str, Any] = json.loads(line.removeprefix(answer))
    return found


async def _expect(caller: Child, expected: str) -> None:
    """Read the caller's lines up to `expected` (the phases it passes meanwhile are only news)."""
    while (line := await caller.read_line(_CALLER_SECONDS)) != expected:
        if not line.startswith(caller_module.PHASE):
            raise RuntimeError(f"{caller.name} said {line!r}, expected {expected!r}")


async def _result(children: Children, caller: Child, errors: Errors) -> dict[str, Any]:
    """The caller's result line (the lines before it are its phases), once it has exited."""
    while not (line := await caller.read_line(_CALLER_SECONDS)).startswith(caller_module.RESULT):
        pass
    await children.stop(caller)
    found: dict[str, Any] = json.loads(line.removeprefix(caller_module.RESULT))
    for name, count in found["errors"].items():
        errors.counts[name] += count
    for name, example in found["error_examples"].items():
        errors.examples.setdefault(name, example)
    return found


async def _cpu_window(pid: int, seconds: float) -> dict[str, Any]:
    """The process's CPU seconds per second over `seconds` (and over each whole second of it), and when the
    window ended on CLOCK_MONOTONIC. /proc/PID/stat counts in clock ticks (10 ms: over 10 s, shares under
    0.001 read 0); `schedstat_share` is the same from the nanoseconds its threads ran (`_run_seconds`)."""
    began, cpu_began, ran_began = time.perf_counter(), cpu_seconds(pid), _run_seconds(pid)
    per_second: list[float] = []
    mark, cpu_mark = began, cpu_began
    while (left := began + seconds - time.perf_counter()) > 0:
        await asyncio.sleep(min(1.0, left))  # the window itself: nothing to await but time
        now, cpu_now = time.perf_counter(), cpu_seconds(pid)
        per_second.append(round(cpu_share(cpu_now - cpu_mark, now - mark), 4))
        mark, cpu_mark = now, cpu_now
    return {
        "share": cpu_share(cpu_mark - cpu_began, mark - began),
        "schedstat_share": cpu_share(_run_seconds(pid) - ran_began, mark - began),
        "per_second": per_second,
        "ended": time.clock_gettime(time.CLOCK_MONOTONIC),
    }


def _run_seconds(pid: int) -> float:
    """Seconds the process's threads have run on a CPU, from /proc/PID/task/*/schedstat (nanoseconds; a thread
    that ended is no longer counted)."""
    total = 0
    for thread in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((thread / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
    return total / 1e9
