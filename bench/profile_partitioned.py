"""Where a partitioned NATS daemon spends its CPU per task: `python -m bench.profile_partitioned [--count N]`.

Run by hand from the repository's root (not part of the suite), as `bench.partitioned_probe` is: one
`nats-server -js -m PORT` of its own (loopback, a temporary store directory), a registry in this process, two
no-op workers (`wa worker bench.workers:NoopWorker` processes), and for each home in turn (`--homes`: the
`PartitionedHome`, then a `SqliteTaskStore` for comparison) one embedded `AsyncOrchestrator` in this process.
For each home, after `--warmup` tasks:

1. sequential: `--sequential` tasks one after the other: p50 and p99 latency;
2. plain: `--count` no-op tasks at 256 in flight, nothing watching: tasks per second, this process's CPU per
   task (`time.process_time`: every thread of it, the in-process registry included), nats-server's and the
   workers' (from /proc), nats-server's /varz in_msgs and out_msgs per task, and the garbage collector's
   passes (by generation: how many, and their µs per task; the profilers charge them to whichever function
   allocated when a pass began);
3. messages: the same round again with this process's NATS messages counted by kind (what it publishes:
   document creates, updates, finished copies, purges, update-log publishes, flow-control replies, API
   requests; what it hears: writer acknowledgements, partition-consumer deliveries of documents and of
   deletion markers, request replies, control messages): per task;
4. cProfile: the same round under cProfile: the top `--top` functions by tottime and by cumtime (µs per task as
   profiled: cProfile inflates everything, by the factor printed), and their tottime summed into buckets
   (`BUCKETS`; a standard-library or built-in function's time goes to the bucket of whoever called it);
5. py-spy (when `--py-spy PATH` names a py-spy binary, e.g. one `pip install --target /tmp/pyspy py-spy`
   made, never the project's venv): `--py-spy-count` tasks sampled by `py-spy record` on this process,
   without pausing it (`--nonblocking`), or with `--py-spy-native` C frames too (the garbage collector's
   passes are a bucket then, which cProfile cannot show; the process runs several times slower while
   sampled). Each sample goes to the bucket of its innermost frame that has one, and the share under each of
   a few functions is shown (`INCLUSIVE`); both are scaled to the plain round's CPU per task. Its shares are
   the closer to the daemon's (cProfile's overhead is per call, so it inflates call-heavy code the most), but
   the sampled round itself runs slower (py-spy takes CPU of its own on a small machine), as printed.

It runs on uvloop, as `wa orchestrator` does, unless WA_LOOP=asyncio (asyncio's loop: its Python code then shows
in the profiles; under uvloop the loop's own work is C, counted by py-spy in the innermost Python frame that
runs it, `asyncio.runners` for the loop itself). cProfile sees the main thread only; py-spy sees gRPC's
completion-queue poller thread too (counted as gRPC). Bucket figures are given per home; the SQLite home's
are there to show what is the engine's and gRPC's own.
`--save DIR` keeps the cProfile stats (`<home>.pstats`) and py-spy's collapsed stacks (`<home>.pyspy.txt`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import os
import pstats
import re
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from bench.loops import loop_name
from bench.loops import run as run_on_loop
from bench.partitioned_probe import IN_FLIGHT, nats_server, read_varz, run_in_flight, run_sequential, start_worker
from worker_abstraction import AsyncOrchestrator, RegistryServer, collector
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.stores.jetstream import NatsOptions, wire
from worker_abstraction.stores.sqlite import SqliteTaskStore

_TICK = os.sysconf("SC_CLK_TCK")

# ---- buckets ------------------------------------------------------------------------------------------------

NATS_PY = "nats-py parsing/publishing"
DOC_JSON = "JSON encode/decode of documents"
PROTOBUF = "protobuf serialization"
WRITER = "the writer (pipeline.py)"
CONSUMER = "the partition consumer"
UPDATES = "update log publishing"
HOME = "home/journal bookkeeping"
ENGINE = "the engine/TaskRun"
GRPC = "gRPC to workers"
ASYNCIO = "asyncio overhead"
GC = "garbage collection (--py-spy-native)"
REGISTRY = "registry (in this process)"
HARNESS = "bench harness"
OTHER = "other"
BUCKETS = (NATS_PY, DOC_JSON, PROTOBUF, WRITER, CONSUMER, UPDATES, HOME, ENGINE, GRPC, ASYNCIO, GC, REGISTRY,
           HARNESS, OTHER)  # fmt: skip

_CONSUMER_FUNCTIONS = frozenset({"seen", "consider", "watching", "poked", "scan_partition", "is_deletion",
                                 "task_id_of"})  # fmt: skip
_UPDATE_FUNCTIONS = frozenset({"_updated", "send_update",
                               "task_token", "sink"})  # fmt: skip
# Files whose functions serve everyone: their time goes to their callers' buckets.
_GENERIC_FILES = ("/json/", "/base64.py", "/dataclasses.py", "/functools.py", "/contextlib.py", "/hashlib.py",
                  "/enum.py", "/typing.py", "/abc.py", "/copy.py", "/re/", "/re.py", "/uuid.py", "/random.py",
                  "/datetime.py", "/weakref.py", "/_weakrefset.py", "/collections/", "/logging/", "/threading.py",
                  "/email/", "/inspect.py", "/types.py")  # fmt: skip


def bucket_of(filename: str, function: str) -> str | None:
    """The bucket of a function by where it is defined (None: it serves everyone, ask its caller)."""
    name = function.rsplit(".", 1)[-1]
    path = filename.replace("\\", "/")
    if path in ("~", "") or path.startswith("<"):  # a built-in, as cProfile names them
        if "epoll" in function or "select" in function or "_socket" in function or "socket." in function:
            return ASYNCIO
        if "grpc" in function or "cygrpc" in function:
            return GRPC
        if "google._upb" in function or "protobuf" in function or "SerializeToString" in function:
            return PROTOBUF
        if "cProfile" in function or "_lsprof" in function:
            return HARNESS
        return None
    if "/bench/" in path:
        return HARNESS
    if "worker_abstraction/" in path:
        if path.endswith(("stores/jetstream/pipeline.py", "stores/jetstream/wire.py")):
            return WRITER
        if path.endswith("stores/jetstream/tasks.py"):
            return DOC_JSON if name in ("_encode", "_decode") else HOME
        if path.endswith("stores/jetstream/updates.py") or path.endswith("homes/nats/partitioned_follow.py"):
            return UPDATES
        if path.endswith(("homes/nats/partitioned.py", "homes/nats/partitioned_store.py")):
            if name in _CONSUMER_FUNCTIONS:
                return CONSUMER
            return UPDATES if name in _UPDATE_FUNCTIONS else HOME
        if path.endswith("homes/nats/partitioned_journal.py"):
            return UPDATES if name in _UPDATE_FUNCTIONS else HOME
        if path.endswith(("stores/jetstream/partitions.py", "stores/jetstream/connection.py")):
            return HOME
        if "/_convert/" in path or path.endswith(("_convert.py", "stores/serial.py")):
            return PROTOBUF
        if "/_proto/" in path:
            return GRPC if path.endswith("_grpc.py") else PROTOBUF
        if "/orchestrator/edge/" in path or path.endswith(("/_rpc.py", "/_transport.py", "/_handlers.py")):
            return GRPC
        if "/registry/" in path:
            return REGISTRY
        if "/orchestrator/homes/" in path or "/stores/" in path:
            return HOME  # (the SQLite home's store, for the comparison)
        return ENGINE
    if path.endswith((".c", ".h", ".cc", ".cpp", ".pyx", ".pxi", ".pxd")) or ".so" in path:  # (py-spy --native)
        return _native_bucket(path, function)
    if "/nats/" in path:
        return NATS_PY
    if "/google/protobuf/" in path or "/google/_upb/" in path:
        return PROTOBUF
    if "/grpc/" in path or "/grpc_" in path:
        return GRPC
    if "/asyncio/" in path or "/uvloop/" in path or path.endswith(("/selectors.py", "/socket.py", "/ssl.py")):
        return ASYNCIO
    if "cProfile" in path or "/profile.py" in path:
        return HARNESS
    if any(part in path for part in _GENERIC_FILES):
        return None
    return OTHER


def _native_bucket(path: str, function: str) -> str | None:
    """A C frame's bucket: the garbage collector's, uvloop's and libuv's, gRPC's, protobuf's; else its caller's."""
    if function.startswith("gc_collect"):
        return GC
    if "uvloop" in path or "libuv" in path:
        return ASYNCIO
    if "grpc" in path:
        return GRPC
    if "upb" in path or "protobuf" in path:
        return PROTOBUF
    return None


# ---- cProfile -------------------------------------------------------------------------------------------------

_Func = tuple[str, int, str]


def _label(func: _Func) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    short = filename
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in short:
            short = short.split(marker, 1)[1]
            break
    return f"{name} ({short}:{line})"


def _cprofile_buckets(stats: pstats.Stats) -> dict[str, float]:
    """Every function's tottime summed by bucket; a generic one's split among its callers by what each caused
    (recursively, by the callers' cumulative shares for callers that are generic too)."""
    table: dict[_Func, Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[_Func, dict[str, float]] = {}

    def shares(func: _Func, depth: int, seen: frozenset[_Func]) -> dict[str, float]:
        """Which buckets `func`'s time belongs to, as fractions."""
        direct = bucket_of(func[0], func[2])
        if direct is not None:
            return {direct: 1.0}
        if func in memo:
            return memo[func]
        callers = table.get(func, (0, 0, 0, 0, {}))[4]
        weights = {caller: entry[3] for caller, entry in callers.items() if caller not in seen}
        total = sum(weights.values())
        if depth > 12 or total <= 0:
            return {OTHER: 1.0}
        result: dict[str, float] = defaultdict(float)
        for caller, weight in weights.items():
            for bucket, part in shares(caller, depth + 1, seen | {func}).items():
                result[bucket] += part * weight / total
        if not seen:
            memo[func] = dict(result)
        return result

    sums: dict[str, float] = defaultdict(float)
    for func, (_, _, tottime, _, callers) in table.items():
        if bucket_of(func[0], func[2]) is not None:
            sums[bucket_of(func[0], func[2]) or OTHER] += tottime
            continue
        # The time each direct caller caused is known exactly; above that, by cumulative shares.
        for caller, entry in callers.items():
            for bucket, part in shares(caller, 1, frozenset({func})).items():
                sums[bucket] += entry[2] * part
        unattributed = tottime - sum(entry[2] for entry in callers.values())
        if unattributed > 1e-9:
            sums[OTHER] += unattributed
    return dict(sums)


# ---- py-spy ------------------------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")  # (C frames have no line)

# Functions whose inclusive share of samples is shown (name as py-spy gives it, file ending).
INCLUSIVE: tuple[tuple[str, str], ...] = (
    ("Client._read_loop", "nats/aio/client.py"),
    ("Client._process_msg", "nats/aio/client.py"),
    ("Client.publish", "nats/aio/client.py"),
    ("Subscription._wait_for_msgs", "nats/aio/subscription.py"),
    ("JetStreamWriter._send_loop", "pipeline.py"),
    ("JetStreamWriter._on_ack", "pipeline.py"),
    ("PartitionedStore.watch_partition.<locals>.heard", "partitioned_store.py"),
    ("Takeover.seen", "partitioned_takeover.py"),
    ("PartitionedHome._created", "partitioned.py"),
    ("PartitionedHome._create", "partitioned.py"),
    ("PartitionedHome.accept", "partitioned.py"),
    ("PartitionedJournal._written", "partitioned_journal.py"),
    ("PartitionedJournal._send", "partitioned_journal.py"),
    ("PartitionedJournal._ended", "partitioned_journal.py"),
    ("PartitionedJournal._move", "partitioned_journal.py"),
    ("PartitionedJournal._updated", "partitioned_journal.py"),
    ("PartitionedJournal._update_written", "partitioned_journal.py"),
    ("PartitionedJournal.finished", "partitioned_journal.py"),
    ("_encode", "jetstream/tasks.py"),
    ("_decode", "jetstream/tasks.py"),
    ("TaskRun._send", "core/run.py"),
    ("TaskRun._answered", "core/run.py"),
)


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for part in stack.split(";"):
        match = _FRAME.match(part)
        frames.append((match["file"], match["function"]) if match else ("", part))
    # (py-spy --native: the thread's own start, below Python's frames, is libc's; the rest is what ran)
    while frames and frames[0][0].endswith(".so.6") and frames[0][1].startswith("0x"):
        frames.pop(0)
    return frames


def _pyspy_buckets(lines: list[str]) -> tuple[dict[str, int], dict[str, int], int]:
    """Samples by bucket (the innermost frame that has one), samples under each `INCLUSIVE` function, total."""
    buckets: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = _frames(stack)
        if any(function == "Thread.run" and filename.endswith("threading.py") for filename, function in frames):
            # (a thread in C below Thread.run: gRPC's completion-queue poller, the only thread here)
            buckets[GC if any(function.startswith("gc_collect") for _, function in frames) else GRPC] += count
            frames = []
        for filename, function in reversed(frames):
            bucket = bucket_of(filename, function)
            if bucket is not None:
                buckets[bucket] += count
                break
        else:
            if frames:
                buckets[OTHER] += count
        names = {(function, filename) for filename, function in frames}
        for function, ending in INCLUSIVE:
            if any(name == function and filename.endswith(ending) for name, filename in names):
                inclusive[function] += count
    return dict(buckets), dict(inclusive), total


@contextlib.contextmanager
def _pyspy(path: str, output: Path, rate: int, *, native: bool) -> Iterator[None]:
    """py-spy recording this process (collapsed stacks, full file names) while the block runs."""
    command = [path, "record", "--pid", str(os.getpid()), "--rate", str(rate), "--format", "raw",
               "--full-filenames", "-o", str(output)]  # fmt: skip
    # Native: C frames too, the process paused while each is unwound (it runs several times slower meanwhile);
    # else not paused at all (--nonblocking: a sample may mix two moments, which averages out).
    command.append("--native" if native else "--nonblocking")
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # (attaching; the loop is idle meanwhile, and idle samples are not kept)
        if spy.poll() is not None:
            raise RuntimeError(f"py-spy stopped: {spy.stderr.read().decode(errors='replace')[-1000:]}")  # type: ignore[union-attr]
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


# ---- messages --------------------------------------------------------------------------------------------------


class _Messages:
    """Counts this process's NATS messages by kind while installed (on nats-py's Client, every connection)."""

    def __init__(self, writer_inbox: str) -> None:
        self.writer_inbox = writer_inbox.encode()
        self.sent: Counter[str] = Counter()
        self.heard: Counter[str] = Counter()
        self._publish = Client.publish
        self._process = Client._process_msg
        self._command = wire.command  # (the writer builds its batches' commands there, past Client.publish)

    def __enter__(self) -> _Messages:
        publish, process, messages = self._publish, self._process, self

        async def counted_publish(client: Client, subject: str, payload: bytes = b"", reply: str = "",
                                  headers: dict[str, str] | None = None) -> None:  # fmt: skip
            messages.sent[_sent_kind(subject, headers)] += 1
            await publish(client, subject, payload, reply, headers)

        async def counted_process(client: Client, sid: int, subject: bytes, reply: bytes, data: bytes,
                                  headers: bytes) -> None:  # fmt: skip
            messages.heard[messages.heard_kind(subject, data, headers)] += 1
            await process(client, sid, subject, reply, data, headers)

        def counted_command(subject: str, reply: str, headers: dict[str, str] | None, data: bytes) -> bytes:
            messages.sent[_sent_kind(subject, headers)] += 1
            return command(subject, reply, headers, data)

        command = self._command
        Client.publish = counted_publish  # type: ignore[method-assign,assignment]
        Client._process_msg = counted_process  # type: ignore[method-assign,assignment]
        wire.command = counted_command
        return self

    def __exit__(self, *exc_info: object) -> None:
        Client.publish = self._publish  # type: ignore[method-assign]
        Client._process_msg = self._process  # type: ignore[method-assign]
        wire.command = self._command

    def heard_kind(self, subject: bytes | str, data: bytes, headers: bytes | None) -> str:
        subject_bytes = subject.encode() if isinstance(subject, str) else subject
        if headers and headers.startswith(b"NATS/1.0 100"):
            return "control (heartbeat/flow control)"
        if subject_bytes.startswith(self.writer_inbox):
            return "writer acks"
        if subject_bytes.startswith(b"$KV.wa_ptasks."):
            if headers and b"KV-Operation" in headers:
                return "partition consumer: deletion markers"
            return "partition consumer: documents"
        if subject_bytes.startswith(b"_INBOX."):
            return "request replies (API, KV reads, leases)"
        if subject_bytes.startswith(b"wa.updates."):
            return "update log (live)"
        if subject_bytes.startswith(b"$KV."):
            return "lease/other KV watches"
        return "other"


def _sent_kind(subject: str, headers: dict[str, str] | None) -> str:
    headers = headers or {}
    if subject.startswith("$KV.wa_ptasks.done."):
        return "doc: finished copy (done.*)"
    if subject.startswith("$KV.wa_ptasks."):
        if "KV-Operation" in headers:
            return "doc: purge (moved marker)"
        if headers.get("Nats-Expected-Last-Subject-Sequence") == "0":
            return "doc: create"
        return "doc: update (CAS)"
    if subject.startswith("wa.updates."):
        return "update log publish"
    if subject.startswith("$JS.FC."):
        return "flow-control replies"
    if subject.startswith("$JS.API."):
        return "JetStream API requests"
    if subject.startswith("$KV."):
        return "lease/other KV writes"
    return "other"


# ---- the processes -----------------------------------------------------------------------------------------------


def _cpu_of(pid: int) -> float:
    """A process's CPU seconds (user + system), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass
class _Servers:
    url: str
    varz: str
    nats_pid: int
    worker_pids: list[int] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _workers(registry: str, count: int) -> AsyncIterator[list[int]]:
    processes = [start_worker(registry) for _ in range(count)]
    try:
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:  # (waited for off the loop: the registry here answers their goodbyes)
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()


# ---- measuring ---------------------------------------------------------------------------------------------------


class _Collections:
    """The garbage collector's passes while installed: how many of each generation, and their seconds."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._began = 0.0
        self.tracked = 0  # objects the collector tracked at the end

    def __enter__(self) -> _Collections:
        gc.callbacks.append(self._heard)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._heard)
        self.tracked = len(gc.get_objects())

    def _heard(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            generation = info["generation"]
            self.count[generation] += 1
            self.seconds[generation] += time.perf_counter() - self._began


@dataclass
class Round:
    tasks: int
    seconds: float
    cpu: float  # this process's CPU seconds
    nats_cpu: float = 0.0
    workers_cpu: float = 0.0
    varz: tuple[int, int] = (0, 0)
    collections: _Collections | None = None

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    def per_task(self, seconds: float) -> float:
        return seconds / self.tasks * 1e6


@dataclass
class Measured:
    home: str
    p50_ms: float
    p99_ms: float
    plain: Round
    profiled: Round | None = None
    stats: pstats.Stats | None = None
    sent: Counter[str] = field(default_factory=Counter)
    heard: Counter[str] = field(default_factory=Counter)
    counted_tasks: int = 0
    client_stats: tuple[int, int] = (0, 0)
    pyspy: tuple[dict[str, int], dict[str, int], int] | None = None
    sampled: Round | None = None  # the py-spy round (its CPU shows what sampling costs)


async def _round(orchestrator: AsyncOrchestrator, count: int, servers: _Servers) -> Round:
    varz = read_varz(servers.varz)
    nats_cpu, workers_cpu = _cpu_of(servers.nats_pid), sum(_cpu_of(pid) for pid in servers.worker_pids)
    with _Collections() as collections:
        cpu, began = time.process_time(), time.perf_counter()
        await run_in_flight(orchestrator, count)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    after = read_varz(servers.varz)
    return Round(
        count,
        seconds,
        cpu,
        _cpu_of(servers.nats_pid) - nats_cpu,
        sum(_cpu_of(pid) for pid in servers.worker_pids) - workers_cpu,
        (after[0] - varz[0], after[1] - varz[1]),
        collections,
    )


async def _measure(
    name: str, orchestrator: AsyncOrchestrator, home: PartitionedHome | None, args: argparse.Namespace,
    servers: _Servers,
) -> Measured:  # fmt: skip
    await orchestrator.wait_for_workers("noop", timeout_seconds=15, count=2)
    await run_in_flight(orchestrator, args.warmup)
    latencies = sorted(await run_sequential(orchestrator, args.sequential))
    plain = await _round(orchestrator, args.count, servers)
    measured = Measured(
        name,
        statistics.median(latencies) * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        plain,
    )
    print(f"[{name}] plain round done: {plain.rate:.0f} tasks/s, {plain.per_task(plain.cpu):.0f} µs CPU per task",
          flush=True)  # fmt: skip
    if home is not None:
        before = (home.client.stats["in_msgs"], home.client.stats["out_msgs"])
        with _Messages(home.store.writer._inbox) as messages:
            await run_in_flight(orchestrator, args.count)
        measured.sent, measured.heard, measured.counted_tasks = messages.sent, messages.heard, args.count
        measured.client_stats = (
            home.client.stats["in_msgs"] - before[0],
            home.client.stats["out_msgs"] - before[1],
        )
    profile = cProfile.Profile()
    cpu, began = time.process_time(), time.perf_counter()
    profile.enable()
    try:
        await run_in_flight(orchestrator, args.count)
    finally:
        profile.disable()
    measured.profiled = Round(args.count, time.perf_counter() - began, time.process_time() - cpu)
    measured.stats = pstats.Stats(profile)
    if args.save:
        measured.stats.dump_stats(str(Path(args.save) / f"{name}.pstats"))
    if args.py_spy:
        with tempfile.TemporaryDirectory(prefix="wa-pyspy-") as temporary:
            output = Path(args.save or temporary) / f"{name}.pyspy.txt"
            with _pyspy(args.py_spy, output, args.py_spy_rate, native=args.py_spy_native):
                cpu, began = time.process_time(), time.perf_counter()
                await run_in_flight(orchestrator, args.py_spy_count)
                measured.sampled = Round(args.py_spy_count, time.perf_counter() - began, time.process_time() - cpu)
            measured.pyspy = _pyspy_buckets(output.read_text().splitlines())
    return measured


async def _home(name: str, args: argparse.Namespace, directory: Path, registry: str, servers: _Servers) -> Measured:
    if name == "partitioned":
        home = await PartitionedHome.open(NatsOptions((servers.url,)), replica="profile-partitioned")
        async with AsyncOrchestrator(registry, home=home) as orchestrator:
            return await _measure(name, orchestrator, home, args, servers)
    store = await SqliteTaskStore(directory / "tasks.db").open()
    try:
        async with AsyncOrchestrator(registry, task_store=store) as orchestrator:
            return await _measure(name, orchestrator, None, args, servers)
    finally:
        await store.close()


# ---- reporting -----------------------------------------------------------------------------------------------


def _print_round(measured: Measured) -> None:
    plain = measured.plain
    print(
        f"\n== {measured.home}: p50 {measured.p50_ms:.2f} ms  p99 {measured.p99_ms:.2f} ms (sequential);  "
        f"{plain.rate:.0f} tasks/s at {IN_FLIGHT} in flight;  CPU per task: this process "
        f"{plain.per_task(plain.cpu):.0f} µs, nats-server {plain.per_task(plain.nats_cpu):.0f} µs, "
        f"the 2 workers {plain.per_task(plain.workers_cpu):.0f} µs"
    )
    if plain.collections is not None:
        counts, seconds = plain.collections.count, plain.collections.seconds
        print(
            f"   garbage collection: {plain.per_task(sum(seconds)):.1f} µs per task "
            + ", ".join(f"gen{n} {counts[n]} passes {plain.per_task(seconds[n]):.1f} µs" for n in range(3))
            + f" ({plain.collections.tracked} objects tracked at its end)"
        )
    if plain.varz != (0, 0):
        print(
            f"   nats-server /varz per task: in_msgs {plain.varz[0] / plain.tasks:.2f}, "
            f"out_msgs {plain.varz[1] / plain.tasks:.2f}"
        )


def _print_messages(measured: Measured) -> None:
    tasks = measured.counted_tasks
    if not tasks:
        return
    print(
        f"\n-- {measured.home}: this process's NATS messages per task (nats-py stats: in "
        f"{measured.client_stats[0] / tasks:.2f}, out {measured.client_stats[1] / tasks:.2f})"
    )
    print("   published (daemon -> server):")
    for kind, count in measured.sent.most_common():
        print(f"     {count / tasks:6.2f}  {kind}")
    print(f"     {sum(measured.sent.values()) / tasks:6.2f}  in all")
    print("   heard (server -> daemon):")
    for kind, count in measured.heard.most_common():
        print(f"     {count / tasks:6.2f}  {kind}")
    print(f"     {sum(measured.heard.values()) / tasks:6.2f}  in all")


def _print_buckets(measured: Measured) -> None:
    assert measured.stats is not None and measured.profiled is not None
    plain, profiled = measured.plain, measured.profiled
    plain_us = plain.per_task(plain.cpu)
    sums = _cprofile_buckets(measured.stats)
    total = sum(sums.values()) or 1.0
    spy_buckets, spy_total = (measured.pyspy[0], measured.pyspy[2]) if measured.pyspy else ({}, 0)
    inflation = profiled.cpu / plain.cpu if plain.cpu else 0.0
    print(
        f"\n-- {measured.home}: CPU per task by bucket (µs). cProfile: tottime as profiled (the round took "
        f"{profiled.per_task(profiled.cpu):.0f} µs CPU per task under it, {inflation:.2f}x the plain round), and its "
        f"shares scaled to the plain round's {plain_us:.0f} µs"
        + (f"; py-spy: {spy_total} samples, shares scaled the same way" if spy_total else "")
    )
    if measured.sampled is not None:
        sampled = measured.sampled
        print(
            f"   (the py-spy round: {sampled.rate:.0f} tasks/s, {sampled.per_task(sampled.cpu):.0f} µs CPU per task "
            "in this process while sampled)"
        )
    header = f"   {'bucket':36s} {'cProfile':>9s} {'share':>6s} {'scaled':>7s}"
    if spy_total:
        header += f" {'py-spy':>7s} {'share':>6s}"
    print(header)
    for bucket in BUCKETS:
        seconds = sums.get(bucket, 0.0)
        line = (
            f"   {bucket:36s} {seconds / profiled.tasks * 1e6:9.1f} {seconds / total:6.1%} "
            f"{seconds / total * plain_us:7.1f}"
        )
        if spy_total:
            samples = spy_buckets.get(bucket, 0)
            line += f" {samples / spy_total * plain_us:7.1f} {samples / spy_total:6.1%}"
        print(line)
    line = f"   {'in all':36s} {total / profiled.tasks * 1e6:9.1f} {1:6.1%} {plain_us:7.1f}"
    if spy_total:
        line += f" {plain_us:7.1f} {1:6.1%}"
    print(line)
    if measured.pyspy and spy_total:
        inclusive = measured.pyspy[1]
        print(f"   py-spy, inclusive (samples with the function on the stack), scaled to {plain_us:.0f} µs per task:")
        for function, _ in INCLUSIVE:
            samples = inclusive.get(function, 0)
            if samples:
                print(f"     {samples / spy_total * plain_us:7.1f} µs {samples / spy_total:6.1%}  {function}")


def _print_top(measured: Measured, top: int) -> None:
    assert measured.stats is not None and measured.profiled is not None
    tasks = measured.profiled.tasks
    table: dict[_Func, Any] = measured.stats.stats  # type: ignore[attr-defined]
    for title, index in (("tottime", 2), ("cumtime", 3)):
        print(f"\n-- {measured.home}: top {top} by {title} (cProfile, µs per task as profiled; calls per task)")
        print(f"   {'tottime':>8s} {'cumtime':>8s} {'calls':>7s}  {'bucket':28s} function")
        ranked = sorted(table.items(), key=lambda item: item[1][index], reverse=True)[:top]
        for func, (_, calls, tottime, cumtime, _) in ranked:
            bucket = bucket_of(func[0], func[2]) or "(caller's)"
            print(
                f"   {tottime / tasks * 1e6:8.1f} {cumtime / tasks * 1e6:8.1f} {calls / tasks:7.2f}  "
                f"{bucket[:28]:28s} {_label(func)}"
            )


def _print_comparison(results: list[Measured]) -> None:
    by_name = {measured.home: measured for measured in results}
    partitioned, sqlite = by_name.get("partitioned"), by_name.get("sqlite")
    if partitioned is None or sqlite is None:
        return
    cpu = partitioned.plain.per_task(partitioned.plain.cpu) / sqlite.plain.per_task(sqlite.plain.cpu)
    rate = partitioned.plain.rate / sqlite.plain.rate
    latency = partitioned.p50_ms / sqlite.p50_ms
    print(
        f"\n== partitioned against sqlite: daemon CPU per task {cpu:.2f}x (target <= 1.5), throughput {rate:.2f}x "
        f"(target >= 0.5), sequential p50 {latency:.2f}x (target <= 2)"
    )


async def main(args: argparse.Namespace) -> None:
    results = []
    print(f"event loop: {loop_name()} (WA_LOOP=asyncio for asyncio's own, whose overhead cProfile and py-spy see)")
    with tempfile.TemporaryDirectory(prefix="wa-profile-partitioned-") as temporary:
        directory = Path(temporary)
        registry = RegistryServer(port=0)
        await registry.start()
        try:
            with nats_server(directory) as (url, varz, nats_pid):
                async with _workers(registry.address, 2) as worker_pids:
                    servers = _Servers(url, varz, nats_pid, worker_pids)
                    collector.tune()  # the collector as `wa orchestrator` sets it (unless WA_GC_THRESHOLD=0)
                    for name in args.homes:
                        results.append(await _home(name, args, directory, registry.address, servers))
        finally:
            await registry.stop(None)
    for measured in results:
        _print_round(measured)
        _print_messages(measured)
        _print_buckets(measured)
    for measured in results:
        if measured.home in args.top_homes:
            _print_top(measured, args.top)
    _print_comparison(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="tasks of each 256-in-flight round")
    parser.add_argument("--sequential", type=int, default=300, help="tasks of the sequential round")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--homes", nargs="+", default=["partitioned", "sqlite"], choices=["partitioned", "sqlite"])
    parser.add_argument("--top", type=int, default=40, help="functions listed by tottime and by cumtime")
    parser.add_argument("--top-homes", nargs="+", default=["partitioned"], choices=["partitioned", "sqlite"],
                        help="the homes whose top functions are listed")  # fmt: skip
    parser.add_argument("--py-spy", default=os.environ.get("PY_SPY", ""), help="a py-spy binary (default $PY_SPY)")
    parser.add_argument("--py-spy-count", type=int, default=6000, help="tasks of the sampled round")
    parser.add_argument("--py-spy-rate", type=int, default=500, help="samples per second")
    parser.add_argument("--py-spy-native", action="store_true",
                        help="C frames too (the garbage collector's), pausing this process at each sample")  # fmt: skip
    parser.add_argument("--save", default="", help="a directory to keep the pstats and py-spy stacks in")
    arguments = parser.parse_args()
    if arguments.save:
        Path(arguments.save).mkdir(parents=True, exist_ok=True)
    run_on_loop(main(arguments))
