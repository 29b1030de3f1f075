"""The daemon scenario's caller: a program of its own that talks to `wa orchestrator` through RemoteOrchestrator.

A caller of the daemon is a separate program that imports `worker_abstraction`, so it gets what importing
the package gives (gRPC's polling, see `worker_abstraction/_transport.py`), while the floor's client stays in
the bench process with gRPC's defaults. Run as `python -m bench.caller ADDRESS MODE WORKERS`; it prints
`caller ready`, then, per phase, `phase NAME` before it and, at the end, one `result JSON` line with every
figure's rounds and the errors seen. Before each of its rounds it prints `floor KIND` and waits for `go` on
its stdin: the bench measures a floor round of that kind meanwhile (`bench.floor.FloorBeside`), so each
round is held to a floor measured just before it; a latency round alternates with the floor's in blocks
(`floor latency` before each of its blocks, `floor latency end` after the last), so both are measured over
the same seconds. The bench watches every process's CPU (this one's, the daemons', the NATS servers', the
workers') between each `phase throughput` line and the `phase throughput done` after it.

With `--throughput-only` (several callers, each at a daemon of its own, started together) it makes the
throughput rounds only, with no floor beside them: it prints `wait warmup`, `wait throughput` before each
round and `wait end` after the last, and each time waits for `go` on its stdin, which the bench sends to
every caller at once. Each round's result also gives its start, its end and when each of its tasks ended,
on the system-wide monotonic clock, so that the bench can count the tasks each caller finished while all of
them were running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import worker_abstraction  # noqa: F401  (before anything loads gRPC, as in a caller program)
from bench.config import CONFIGS, LATENCY_BLOCKS, Config
from bench.loops import run
from bench.measure import Errors, latencies, percentile, throughput
from worker_abstraction import AsyncTaskHandle, RemoteOrchestrator

READY = "caller ready"
PHASE = "phase "
RESULT = "result "
FLOOR = "floor "  # then a FloorBeside kind: the caller waits for GO on its stdin before its own round
WAIT = "wait "  # then `warmup` or `throughput` (--throughput-only): the caller waits for GO before it
GO = "go"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def measure(address: str, config: Config, workers: int) -> dict[str, Any]:
    errors = Errors()
    p50: list[float] = []
    p99: list[float] = []
    async with RemoteOrchestrator(address) as remote:
        await remote.wait_for_workers("noop", count=workers, timeout_seconds=30)
        _say(READY)

        async def noop() -> Any:
            return await (await remote.execute_task("noop", {})).result()

        _say(PHASE + "latency")
        await latencies(noop, config.daemon_latency_warmup, errors)
        for _ in range(config.rounds):
            samples: list[float] = []
            for block in _blocks(config.daemon_latency_count, LATENCY_BLOCKS):
                await _floor_beside("latency")
                samples += await latencies(noop, block, errors)
            await _floor_beside("latency end")
            if not samples:
                raise RuntimeError(f"every task failed: {dict(errors.counts)} {errors.examples}")
            p50.append(percentile(samples, 50) * 1e6)
            p99.append(percentile(samples, 99) * 1e6)
        _say(PHASE + "warmup")
        await throughput(noop, config.daemon_throughput_warmup, 256, errors)
        per_second = []
        for _ in range(config.rounds):
            await _floor_beside("throughput")
            _say(PHASE + "throughput")
            per_second.append(await throughput(noop, config.daemon_throughput_count, 256, errors))
            _say(PHASE + "throughput done")
        bursts = []
        for _ in range(config.rounds):
            await _floor_beside("sequential")
            _say(PHASE + "burst")
            bursts.append(await _burst(remote, config.daemon_burst, errors))
    return {
        "task_p50_us": p50,
        "task_p99_us": p99,
        "throughput_256": per_second,
        "submit_burst_per_s": bursts,
        "errors": dict(errors.counts),
        "error_examples": errors.examples,
    }


async def measure_throughput_only(address: str, config: Config, workers: int) -> dict[str, Any]:
    """The throughput rounds alone, each started on the bench's `go` (see the module's docstring)."""
    errors = Errors()
    rounds: list[dict[str, Any]] = []
    done: list[float] = []  # when each task of the round ended, on the system-wide clock
    async with RemoteOrchestrator(address) as remote:
        await remote.wait_for_workers("noop", count=workers, timeout_seconds=30)
        _say(READY)

        async def noop() -> Any:
            result = await (await remote.execute_task("noop", {})).result()
            done.append(_system_clock())
            return result

        await _wait_for_go("warmup")
        await throughput(noop, config.daemon_throughput_warmup, 256, errors)
        for _ in range(config.rounds):
            await _wait_for_go("throughput")
            _say(PHASE + "throughput")
            done.clear()
            began = _system_clock()
            per_second = await throughput(noop, config.daemon_throughput_count, 256, errors)
            ended = _system_clock()
            _say(PHASE + "throughput done")
            rounds.append({"per_s": per_second, "began": began, "ended": ended, "done": [round(t, 6) for t in done]})
        await _wait_for_go("end")  # alive until the bench has read every process's CPU after the last round
    return {"rounds": rounds, "errors": dict(errors.counts), "error_examples": errors.examples}


def _system_clock() -> float:
    """Seconds on CLOCK_MONOTONIC, which every process on the machine shares (unlike perf_counter's origin)."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


async def _wait_for_go(kind: str) -> None:
    _say(WAIT + kind)
    await _read_go()


def _blocks(count: int, blocks: int) -> list[int]:
    """`count` split into `blocks` parts as even as can be."""
    return [count // blocks + (1 if part < count % blocks else 0) for part in range(blocks)]


async def _floor_beside(kind: str) -> None:
    """Have the bench measure a floor round of `kind` now, and wait until it has (see FloorBeside)."""
    _say(FLOOR + kind)
    await _read_go()


async def _read_go() -> None:
    answer = await asyncio.to_thread(sys.stdin.readline)
    if answer.strip() != GO:
        raise RuntimeError(f"the bench answered {answer[:40]!r}, not {GO!r}")


async def _burst(remote: RemoteOrchestrator, count: int, errors: Errors) -> float:
    """Submit `count` tasks one by one, then wait for all: tasks per second over the whole."""
    started = time.perf_counter()
    handles: list[AsyncTaskHandle] = []
    for _ in range(count):
        try:
            handles.append(await remote.execute_task("noop", {}))
        except Exception as error:
            errors.record(error)
    for handle in handles:
        try:
            await handle.result(timeout_seconds=120)
        except Exception as error:
            errors.record(error)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address")
    parser.add_argument("mode", choices=sorted(CONFIGS))
    parser.add_argument("workers", type=int)
    parser.add_argument("--throughput-only", action="store_true", help="the throughput rounds alone, on `go`")
    arguments = parser.parse_args()
    how = measure_throughput_only if arguments.throughput_only else measure
    figures = run(how(arguments.address, CONFIGS[arguments.mode], arguments.workers))
    _say(PHASE + "done")
    _say(RESULT + json.dumps(figures))


if __name__ == "__main__":
    main()
