"""`wa health --watch` as a process: it prints each status change of a draining worker, and ends with 130
and no traceback on Ctrl-C (SIGINT)."""

from __future__ import annotations

import asyncio
import signal
import sys

from processes import HERE, Start, env, wa

from tests.conftest import Gates
from tests.observability.test_health_reflection import draining_worker
from worker_abstraction.observability.health import WORKER_SERVICE


async def test_watch_prints_each_change_and_ends_with_130_on_ctrl_c(gates: Gates) -> None:
    async with draining_worker(gates) as draining:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "worker_abstraction.cli",
            "health",
            draining.worker.address,
            "--service",
            WORKER_SERVICE,
            "--watch",
            cwd=HERE,
            env=env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        try:
            async with asyncio.timeout(20):
                assert await process.stdout.readline() == b"SERVING\n"
                draining.begin_stop()
                assert await process.stdout.readline() == b"NOT_SERVING\n"
                process.send_signal(signal.SIGINT)
                rest, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 130
    assert rest == b""
    assert b"Traceback" not in err, err.decode()


async def test_a_worker_process_is_serving_then_unreachable_once_it_exits(start: Start) -> None:
    worker = await start("worker", "_workers:EchoWorker", "--port", "0", "--registry", "")
    serving = await wa("health", worker.address, "--service", WORKER_SERVICE)
    assert (serving.code, serving.out) == (0, "SERVING\n")
    assert await worker.stop() == 0
    gone = await wa("health", worker.address)
    assert gone.code == 2 and gone.out == ""
    assert gone.err.startswith(f"cannot reach the server at {worker.address}: "), gone.err
