"""An orchestrator daemon with its SQLite store and a retention whose sweeps the bench starts (scenario 9).

    python -m bench.retention_daemon --registry HOST:PORT --store PATH --retention SECONDS

The server `wa orchestrator --store PATH --retention SECONDS` runs (OrchestratorServer, its log on stderr,
`gc.freeze()` once it serves), with one difference: `wa orchestrator` sweeps every minute
(`Retention.sweep_seconds`, which it has no flag for), and a benchmark must know when a sweep runs. Here the
periodic sweep is a day away, and each line `sweep` on stdin runs one sweep at once, through the engine's
`expire_now()`, which is what the periodic sweep runs. Once it ends the daemon prints
`swept {"began": T0, "ended": T1}` (on CLOCK_MONOTONIC, which every process shares). A line `count` then has it
print `counted {"tasks": N}`, how many tasks that sweep dropped (counted on request, so that counting them
delays no task measured beside the sweep). It prints `orchestrator listening on HOST:PORT` once it serves,
and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import sys
import time

from bench.loops import run
from worker_abstraction.observability import log
from worker_abstraction.orchestrator.core.retention import Retention
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

READY = "orchestrator listening on "
SWEEP, SWEPT = "sweep", "swept "  # then a JSON object
COUNT, COUNTED = "count", "counted "  # (the same)
_A_DAY = 86_400.0


async def serve(arguments: argparse.Namespace) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    retention = Retention(finished_seconds=arguments.retention, sweep_seconds=_A_DAY)
    server = OrchestratorServer(arguments.registry, port=0, store_path=arguments.store, retention=retention)
    await server.start()
    gc.freeze()  # as `wa orchestrator` does once it serves
    print(READY + server.address, flush=True)
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    expired: list[str] = []
    try:
        while line := await commands.readline():
            command = line.decode().strip()
            if command == SWEEP:
                began = time.clock_gettime(time.CLOCK_MONOTONIC)
                expired = await server.orchestrator.engine.expire_now()
                ended = time.clock_gettime(time.CLOCK_MONOTONIC)
                print(SWEPT + json.dumps({"began": began, "ended": ended}), flush=True)
            elif command == COUNT:
                # (a task the engine still held finished is named twice: by its memory and by the store)
                print(COUNTED + json.dumps({"tasks": len(set(expired))}), flush=True)
            else:
                raise RuntimeError(f"unknown command {line[:40]!r}")
        await asyncio.Event().wait()  # stdin closed: serve on until SIGTERM
    finally:
        await server.stop(grace_seconds=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", required=True, metavar="HOST:PORT")
    parser.add_argument("--store", required=True, metavar="PATH")
    parser.add_argument("--retention", type=float, required=True, metavar="SECONDS")
    arguments = parser.parse_args()
    log.configure("INFO")
    with contextlib.suppress(asyncio.CancelledError):  # SIGTERM
        run(serve(arguments))


if __name__ == "__main__":
    main()
