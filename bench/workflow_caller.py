"""Scenario 8's caller: workflows through `wa orchestrator`, next to single tasks through the same daemon.

Run as `python -m bench.workflow_caller ADDRESS MODE WORKERS (--sqlite PATH | --nats URL)`; it prints
`caller ready`, `phase NAME` before each phase and `phase NAME done` after the two whose CPU the bench
watches (`throughput`, `map`), and at the end one `result JSON` line. Each round, in this order:

- **chains and tasks, taking turns**: a chain of `workflow_chain_steps` no-op steps (each after the one
  before), then `workflow_tasks_per_chain` single no-op tasks one after another, `workflow_chains` times; the
  round's p50 of a chain's wall time (from `run_workflow` to its result) over its steps, and the p50 of the
  tasks: both from the same seconds of the machine;
- **throughput, then a map**: `workflow_throughput_count` no-op tasks at 256 in flight (tasks per second),
  then one workflow whose map step runs `workflow_map_elements` no-op elements at most
  `workflow_map_concurrency` at once (elements per second, from `run_workflow` to its result; the list
  step before the map is in that time).

Then the store: a chain of each of `workflow_bytes_chains` steps and a map of each of `workflow_bytes_maps`
elements, one at a time, each measured alone (`bench/store_bytes.py`): the bytes of its rows in the SQLite
file, or what the NATS streams gained once the markers of its finished tasks expired
(`workflow_nats_settle_seconds` after its end; and as long before the first, for the rounds' tasks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import worker_abstraction  # noqa: F401  (before anything loads gRPC, as in a caller program)
from bench import store_bytes
from bench.caller import PHASE, READY, RESULT, _say
from bench.config import CONFIGS, Config
from bench.loops import run
from bench.measure import Errors, latencies, percentile, throughput
from worker_abstraction import RemoteOrchestrator
from worker_abstraction.workflows import Workflow

NOOP, LIST, ELEMENT = "noop", "numbers", "noop_item"  # bench.workers.NoopWorker's capabilities
_SQLITE_SECONDS = 30.0  # the longest the finished records of a workflow's tasks may take to be written


def chain(steps: int) -> Workflow:
    """`steps` no-op steps, each after the one before."""
    flow = Workflow(f"chain-{steps}")
    before: list[str] = []
    for i in range(steps):
        flow.step(f"s{i}", NOOP, {}, after=before)
        before = [f"s{i}"]
    return flow


def mapped(elements: int, concurrency: int) -> Workflow:
    """A list of `elements` integers, then a no-op task per element, at most `concurrency` at once."""
    flow = Workflow(f"map-{elements}")
    items = flow.step("list", LIST, {"count": elements})
    flow.map("each", ELEMENT, over=items, concurrency=concurrency)
    return flow


def map_steps(elements: int) -> int:
    """The step tasks a `mapped` workflow runs: its list step and one per element."""
    return elements + 1


async def measure(remote: RemoteOrchestrator, config: Config) -> dict[str, Any]:
    errors = Errors()
    found: dict[str, list[float]] = {
        name: [] for name in ("task_p50_us", "chain_step_us", "throughput_256", "map_elements_per_s")
    }

    async def noop() -> Any:
        return await (await remote.execute_task(NOOP, {})).result()

    async def run_chain() -> Any:
        return await (await remote.run_workflow(chain(config.workflow_chain_steps))).result(timeout_seconds=120)

    _say(PHASE + "warmup")
    await latencies(noop, config.workflow_task_warmup, errors)
    await latencies(run_chain, config.workflow_chain_warmup, errors)
    await throughput(noop, config.workflow_throughput_warmup, 256, errors)
    await _map(remote, config, min(config.workflow_map_elements, config.workflow_throughput_warmup))
    for _ in range(config.rounds):
        _say(PHASE + "chains")
        tasks: list[float] = []
        chains: list[float] = []
        for _ in range(config.workflow_chains):
            chains += await latencies(run_chain, 1, errors)
            tasks += await latencies(noop, config.workflow_tasks_per_chain, errors)
        if not tasks or not chains:
            raise RuntimeError(f"every chain or every task failed: {dict(errors.counts)} {errors.examples}")
        found["task_p50_us"].append(percentile(tasks, 50) * 1e6)
        found["chain_step_us"].append(percentile(chains, 50) / config.workflow_chain_steps * 1e6)
        _say(PHASE + "throughput")
        found["throughput_256"].append(await throughput(noop, config.workflow_throughput_count, 256, errors))
        _say(PHASE + "throughput done")
        _say(PHASE + "map")
        found["map_elements_per_s"].append(await _map(remote, config, config.workflow_map_elements))
        _say(PHASE + "map done")
    return found | {"errors": dict(errors.counts), "error_examples": errors.examples}


async def _map(remote: RemoteOrchestrator, config: Config, elements: int) -> float:
    """One map of `elements` no-op elements: elements per second, from submitting it to its result."""
    began = time.perf_counter()
    handle = await remote.run_workflow(mapped(elements, config.workflow_map_concurrency))
    outputs = await handle.result(timeout_seconds=600)
    elapsed = time.perf_counter() - began
    if len(outputs["each"]) != elements:
        raise RuntimeError(f"a map of {elements} elements gave {len(outputs['each'])} outputs")
    return elements / elapsed


async def measure_bytes(
    remote: RemoteOrchestrator, config: Config, *, sqlite: Path | None, nats: str | None
) -> dict[str, Any]:
    """The store's bytes for each workflow of `workflow_bytes_chains` / `_maps` (see the module's docstring)."""
    _say(PHASE + "bytes")
    shapes = [("chain", steps, steps, chain(steps)) for steps in config.workflow_bytes_chains]
    shapes += [
        ("map", elements, map_steps(elements), mapped(elements, config.workflow_map_concurrency))
        for elements in config.workflow_bytes_maps
    ]
    measured: list[dict[str, Any]] = []
    if nats is not None:  # the markers of the rounds' tasks expire first, so that none does while one is measured
        await asyncio.sleep(config.workflow_nats_settle_seconds)
    for shape, size, steps, flow in shapes:
        workflow_id = f"bench-bytes-{shape}-{size}"
        if sqlite is not None:
            pages_before = store_bytes.sqlite_pages_in_use(sqlite)
        else:
            assert nats is not None
            streams_before = await store_bytes.nats_stream_bytes(nats)
        await (await remote.run_workflow(flow, workflow_id=workflow_id)).result(timeout_seconds=600)
        one: dict[str, Any] = {"shape": shape, "size": size, "steps": steps}
        if sqlite is not None:
            rows = await _finished_rows(sqlite, workflow_id, steps + 1)
            one |= {"bytes": rows.bytes, "pages_bytes": store_bytes.sqlite_pages_in_use(sqlite) - pages_before}
        else:
            assert nats is not None
            await asyncio.sleep(config.workflow_nats_settle_seconds)  # the finished tasks' markers expire
            streams = store_bytes.difference(streams_before, await store_bytes.nats_stream_bytes(nats))
            one |= {"bytes": sum(streams.values()), "streams": streams}
        measured.append(one)
    return {"store_bytes": measured}


async def _finished_rows(path: Path, workflow_id: str, rows: int) -> store_bytes.Rows:
    """The workflow's `rows` rows once every one is finished (their records are written behind their end)."""
    deadline = time.monotonic() + _SQLITE_SECONDS
    while True:
        found = store_bytes.sqlite_rows(path, workflow_id)
        if found.finished == rows:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workflow_id}: {found.finished} of {rows} rows finished after {_SQLITE_SECONDS:g}s")
        await asyncio.sleep(0.05)  # polling another process's file: it has no event to await


async def main_async(arguments: argparse.Namespace) -> dict[str, Any]:
    config = CONFIGS[arguments.mode]
    async with RemoteOrchestrator(arguments.address) as remote:
        await remote.wait_for_workers(NOOP, count=arguments.workers, timeout_seconds=30)
        _say(READY)
        found = await measure(remote, config)
        found |= await measure_bytes(remote, config, sqlite=arguments.sqlite, nats=arguments.nats)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address")
    parser.add_argument("mode", choices=sorted(CONFIGS))
    parser.add_argument("workers", type=int)
    store = parser.add_mutually_exclusive_group(required=True)
    store.add_argument("--sqlite", type=Path, help="the daemon's SQLite file")
    store.add_argument("--nats", help="a URL of the daemon's NATS server")
    arguments = parser.parse_args()
    found = run(main_async(arguments))
    _say(PHASE + "done")
    _say(RESULT + json.dumps(found))


if __name__ == "__main__":
    main()
