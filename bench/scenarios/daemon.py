"""Scenario 6: the deployed path, tasks through an orchestrator daemon (`wa orchestrator`).

The daemon runs as its own process, once with its SQLite store (the default a team deploys) and once with
`--store :memory:`; the bench process talks to it through `RemoteOrchestrator`, as a caller would. The
same registry and two `NoopWorker` processes as scenarios 1-3 do the work.

- `daemon_task_p50_us` / `_p99_us`: sequential no-op tasks, submit then wait for the result.
- `daemon_throughput_256`: no-op tasks at 256 in flight; `daemon_daemon_cpu_us_per_task_256` the daemon's CPU
  per task in each of those rounds, and `details.daemon_cpu_us_per_task_256` every process's over all of them.
- `daemon_submit_burst_per_s`: `daemon_burst` tasks submitted one by one (each submission awaited), then all
  awaited; tasks per second over the whole.
- `daemon_rss_mb_100k_queued`: the daemon's RSS once `daemon_queued_tasks` no-op tasks wait in its queue
  (a fresh registry with one worker whose only slot is taken); one round.
- `details.daemon_store_probe`: the SQLite store alone in the same directory (`bench/storeprobe.py`): the
  disk's fsync latency, the commit time of the sequential pattern, its checkpoints and how long commits
  waited for them, so that a durable daemon far slower than the in-memory one can be told apart from a slow disk.

Every figure is given for the SQLite store (`daemon_` prefix) and for `:memory:` (`daemon_memory_`).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import caller as caller_module
from bench import storeprobe
from bench.config import Config
from bench.floor import FloorBeside
from bench.measure import Errors, Figure, Results
from bench.procs import Child, Children, CpuWatch, process_kind, rss_mb
from bench.scenarios.tasks import WORKERS, start_registry, start_worker
from worker_abstraction import RemoteOrchestrator

DAEMON_READY = "orchestrator listening on "
_SUBMIT_IN_FLIGHT = 256  # submissions at once while filling the queue for the RSS figure
_CALLER_SECONDS = 600.0  # the longest one phase of the caller may take


async def start_daemon(children: Children, name: str, registry: str, store: str) -> Child:
    """`wa orchestrator` on a free port with the given store."""
    args = ("-m", "worker_abstraction.cli", "orchestrator", "--port", "0", "--registry", registry, "--store", store)
    return await children.start(name, *args, ready_prefix=DAEMON_READY)


async def measure(children: Children, config: Config) -> Results:
    """The deployed path's figures, for the SQLite store and for :memory:."""
    results = Results()
    errors = Errors()
    with tempfile.TemporaryDirectory(prefix="wa-bench-") as scratch:
        registry = await start_registry(children, "daemon-registry")
        workers = await asyncio.gather(
            *(start_worker(children, f"daemon-worker-{i}", registry.address) for i in range(WORKERS))
        )
        for prefix, store in (("daemon_", str(Path(scratch) / "tasks.db")), ("daemon_memory_", ":memory:")):
            daemon = await start_daemon(children, f"{prefix}orchestrator", registry.address, store)
            await run_caller(results, errors, prefix, [daemon], workers, config)
            await children.stop(daemon)
        for worker in workers:
            await children.stop(worker)
        await children.stop(registry)
        for prefix, store in (("daemon_", str(Path(scratch) / "queued.db")), ("daemon_memory_", ":memory:")):
            results.figures[f"{prefix}rss_mb_100k_queued"] = await _queued_rss(children, prefix, store, config, errors)
        results.extras["daemon_store_probe"] = await storeprobe.probe(Path(scratch), config.store_probe_tasks)
    results.extras["daemon_errors"] = dict(errors.counts)
    results.extras["daemon_error_examples"] = errors.examples
    return results


def watched(
    *, callers: Sequence[Child], daemons: Sequence[Child], workers: Sequence[Child], nats: Sequence[int] = ()
) -> dict[str, int]:
    """The pids whose CPU a deployed path's rounds are charged with, by name: a kind alone (`caller`,
    `daemon`, `nats`) or numbered from 1 when there are several (`daemon_1`); the workers are always
    numbered from 0 (`worker_0`), as in the JSON of earlier runs."""

    def named(kind: str, pids: Sequence[int]) -> dict[str, int]:
        return {kind: pids[0]} if len(pids) == 1 else {f"{kind}_{i}": pid for i, pid in enumerate(pids, 1)}

    return (
        named("caller", [c.pid for c in callers])
        | named("daemon", [d.pid for d in daemons])
        | named("nats", nats)
        | {f"worker_{i}": w.pid for i, w in enumerate(workers)}
    )


def daemon_cpu_us_per_task(cpu: CpuWatch, tasks: int) -> Figure:
    """The daemons' CPU (all of them) per task in each round `cpu` watched, `tasks` tasks a round."""
    daemons = [name for name in cpu.pids if process_kind(name) == "daemon"]
    return Figure(tuple(sum(span[name] for name in daemons) / tasks * 1e6 for span in cpu.spans))


async def run_caller(
    results: Results,
    errors: Errors,
    prefix: str,
    daemons: Sequence[Child],
    workers: list[Child],
    config: Config,
    *,
    nats: Sequence[int] = (),
) -> None:
    """Scenario 6's figures through the first of `daemons`, under `prefix`: the caller is a program of its
    own (`bench/caller.py`), as a caller of the daemon is. Each of its rounds follows a floor round of the
    same kind measured from this process (`{prefix}floor_...`), which its ratios are taken to. The CPU of
    its throughput rounds is charged to the caller, every daemon, the `nats` servers' pids and the workers."""
    figures = results.figures
    children = Children(daemons[0].log_path.parent)
    args = ("-m", "bench.caller", daemons[0].address, config.mode, str(len(workers)))
    async with children, FloorBeside(children, config) as floor_beside:
        caller = await children.start(
            f"{prefix}caller", *args, ready_prefix=caller_module.READY, drain=False, stdin=True
        )
        cpu = CpuWatch(watched(callers=[caller], daemons=daemons, workers=workers, nats=nats))
        while not (line := await caller.read_line(_CALLER_SECONDS)).startswith(caller_module.RESULT):
            if line.startswith(caller_module.FLOOR):
                await floor_beside.round(line.removeprefix(caller_module.FLOOR))
                await caller.send_line(caller_module.GO)
            elif line == caller_module.PHASE + "throughput":
                cpu.start()
            elif line == caller_module.PHASE + "throughput done":
                cpu.stop()
        await children.stop(caller)
    found = json.loads(line.removeprefix(caller_module.RESULT))
    for name in ("task_p50_us", "task_p99_us", "throughput_256", "submit_burst_per_s"):
        figures[f"{prefix}{name}"] = Figure(tuple(found[name]))
    figures.update(floor_beside.figures(prefix))
    results.extras[f"{prefix}cpu_us_per_task_256"] = cpu.per_call_us_by_kind(
        config.daemon_throughput_count * config.rounds
    )
    figures[f"{prefix}daemon_cpu_us_per_task_256"] = daemon_cpu_us_per_task(cpu, config.daemon_throughput_count)
    for name, count in found["errors"].items():
        errors.counts[name] += count
    for name, example in found["error_examples"].items():
        errors.examples.setdefault(name, example)


async def _queued_rss(children: Children, prefix: str, store: str, config: Config, errors: Errors) -> Figure:
    """One round: a daemon whose only worker's only slot is taken, `daemon_queued_tasks` tasks waiting."""
    registry = await start_registry(children, f"{prefix}queue-registry")
    worker = await start_worker(
        children, f"{prefix}queue-worker", registry.address, "--max-concurrent", "1", "--grace", "0"
    )
    daemon = await start_daemon(children, f"{prefix}queue-orchestrator", registry.address, store)
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("sleep_ms", timeout_seconds=30)
        await remote.execute_task("sleep_ms", {"ms": 3_600_000}, timeout_seconds=0)  # takes the only slot
        pending = config.daemon_queued_tasks
        lock = asyncio.Lock()

        async def submitter() -> None:
            nonlocal pending
            while True:
                async with lock:
                    if pending <= 0:
                        return
                    pending -= 1
                try:
                    await remote.execute_task("noop", {})
                except Exception as error:
                    errors.record(error)

        await asyncio.gather(*(submitter() for _ in range(_SUBMIT_IN_FLIGHT)))
        rss = rss_mb(daemon.pid)
    for child in (daemon, worker, registry):
        await children.stop(child)
    return Figure((rss,))
