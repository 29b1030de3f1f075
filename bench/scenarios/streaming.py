"""Scenario 10: streamed output and input requests through an orchestrator daemon (`wa orchestrator` on its SQLite
store), with a registry and one `wa worker bench.workers:StreamWorker` (one handler streams); the caller is a
program of its own (`bench/stream_caller.py` says what it does at each step).

- (10a) `stream_chunks_per_s`: one handler streams `stream_chunks` chunks of `stream_chunk_bytes`; the caller
  reads them (`handle.stream()`), each checked for its number and text: chunks per second from the submission
  to the last chunk. Each round follows a floor round made just before it from this process
  (`stream_floor_chunks_per_s`): one bare grpc.aio server stream of as many messages of that size
  (`/bench.Floor/Chunks`), from the call to its last message. `stream_chunk_ratio` is the median of the rounds'
  ratios (target >= 0.5).
- (10b) the daemon's RSS with slow readers. A task streams a few chunks and asks for input (the gate); the
  daemon's RSS then is `stream_rss_mb_before`. `slow_readers` readers, each on a connection of its own
  (`bench/stream_readers.py`), read `slow_read_chunks` of them, then stall (their process frozen: SIGSTOP);
  the gate is answered, the task streams `slow_rest_chunks` more, which the caller reads to the end, and asks
  again; the daemon's RSS then, the task still running and the readers stalled, is the figure. Each kind of
  reader has a daemon of its own (what one kind leaves in the heap would hide what the next costs), so
  `stream_rss_mb_before` has one "round" per daemon; on each the same task ran first with no reader but the
  caller, and what the RSS grew over the same span then is `stream_rss_mb_growth_alone` (the stream's own
  cost: its chunks are kept). The kinds: `stream_rss_mb_slow_watchers`, raw WatchTask streams;
  `stream_rss_mb_slow_readers`, `RemoteOrchestrator`s (each over its OpenSession stream);
  `stream_rss_mb_live_readers`, the same not frozen: they stop iterating `handle.stream()`, but their
  RemoteOrchestrator reads its session on. Target: flat (before + the growth alone). One round each.
- (10c) `input_resume_p50_us` / `_p99_us`: a task that asks for input at once; the caller waits for the
  question, then times `provide_input` to the task's result. `input_noop_p50_us` / `_p99_us`: no-op tasks
  (submission to result) in the same rounds, in blocks taking turns with them. `input_resume_ratio` is the
  median of the rounds' p50 ratios (target <= 3).
"""

from __future__ import annotations

import json
import signal
import tempfile
from pathlib import Path
from typing import Any

from bench import caller as caller_module
from bench import stream_caller, stream_readers
from bench.config import Config
from bench.floor import FloorBeside
from bench.measure import Errors, Figure, Results
from bench.procs import Child, Children, rss_mb
from bench.scenarios.daemon import start_daemon
from bench.scenarios.tasks import WORKER_READY, start_registry

WORKER_CLASS = "bench.workers:StreamWorker"
PREFIX = "stream_"
_CALLER_SECONDS = 600.0  # the longest the caller may say nothing

FLOW_KEYS = (
    "stream_chunks_per_s",
    "stream_floor_chunks_per_s",
    "input_resume_p50_us",
    "input_resume_p99_us",
    "input_noop_p50_us",
    "input_noop_p99_us",
)
# (10b): each kind of reader (`bench.stream_readers`'s kind, and whether its process is frozen), on a daemon of
# its own (`stream_rss_mb_before` and `stream_rss_mb_growth_alone`: one figure per daemon).
READER_KINDS: dict[str, tuple[str, bool]] = {
    "slow_watchers": ("watch", True),
    "live_readers": ("session", False),
    "slow_readers": ("session", True),
}
RSS_KEYS = tuple(f"stream_rss_mb_{name}" for name in READER_KINDS)
SINGLE_ROUND_KEYS = RSS_KEYS
FIGURE_KEYS = (*FLOW_KEYS, "stream_rss_mb_before", "stream_rss_mb_growth_alone", *RSS_KEYS)


async def measure(children: Children, config: Config) -> Results:
    """Scenario 10's figures (see the module's docstring)."""
    results, errors = Results(), Errors()
    registry = await start_registry(children, "stream-registry")
    args = ("-m", "worker_abstraction.cli", "worker", WORKER_CLASS, "--port", "0", "--registry", registry.address)
    worker = await children.start("stream-worker", *args, ready_prefix=WORKER_READY)
    with tempfile.TemporaryDirectory(prefix="wa-bench-stream-") as scratch:
        daemon = await start_daemon(children, "stream-orchestrator", registry.address, str(Path(scratch) / "flow.db"))
        await _flow(children, results, errors, daemon, config)
        await children.stop(daemon)
        await _slow(children, results, errors, registry.address, scratch, config)
    for child in (worker, registry):
        await children.stop(child)
    results.extras["stream_shapes"] = {
        "chunks": config.stream_chunks,
        "chunk_bytes": config.stream_chunk_bytes,
        "readers": config.slow_readers,
        "input_tasks": config.input_count,
    }
    results.extras["stream_errors"] = dict(errors.counts)
    results.extras["stream_error_examples"] = errors.examples
    return results


async def _flow(children: Children, results: Results, errors: Errors, daemon: Child, config: Config) -> None:
    """(10a) with a floor round before each of its rounds, then (10c)."""
    async with FloorBeside(children, config) as floor_beside:
        caller = await _start_caller(children, "stream-caller", "flow", daemon, config)
        while not (line := await caller.read_line(_CALLER_SECONDS)).startswith(caller_module.RESULT):
            if line.startswith(caller_module.FLOOR):
                await floor_beside.round(line.removeprefix(caller_module.FLOOR))
                await caller.send_line(caller_module.GO)
        await children.stop(caller)
    found = _found(line, errors)
    for key in FLOW_KEYS:
        if key in found:
            results.figures[key] = Figure(tuple(found[key]))
    results.figures.update(floor_beside.figures(PREFIX))  # stream_floor_chunks_per_s


async def _slow(
    children: Children, results: Results, errors: Errors, registry: str, scratch: str, config: Config
) -> None:
    """(10b): for each kind of reader, on a daemon of its own: a gated task with no reader but the caller (what the
    stream alone adds to the RSS), then one with the readers: the daemon's RSS at its gate before they come,
    and at its second question."""
    befores: list[float] = []
    alone: list[float] = []
    found: dict[str, Any] = {}
    daemons: dict[str, dict[str, Any]] = {}
    for name, (kind, frozen) in READER_KINDS.items():
        daemon = await start_daemon(children, f"stream-{name}-orchestrator", registry, f"{scratch}/{name}.db")
        caller = await _start_caller(children, f"stream-{name}-caller", "slow", daemon, config)
        idle = rss_mb(daemon.pid)
        control = await _round(children, caller, daemon, None, config)
        with_readers = await _round(children, caller, daemon, (kind, frozen), config)
        await _gate(caller)
        await caller.send_line(stream_caller.END)
        found = _found(await _expect(caller, caller_module.RESULT), errors)
        await children.stop(caller)
        await children.stop(daemon)
        befores.append(with_readers["rss_mb_before"])
        alone.append(control["rss_mb_growth"])
        results.figures[f"stream_rss_mb_{name}"] = Figure((with_readers["rss_mb"],))
        daemons[name] = {"idle_rss_mb": idle, "alone": control, "with_readers": with_readers}
    results.figures["stream_rss_mb_before"] = Figure(tuple(befores))
    results.figures["stream_rss_mb_growth_alone"] = Figure(tuple(alone))
    results.extras["stream_slow"] = {
        "chunks_per_task": found.get("chunks_per_task"),
        "chunk_bytes": config.stream_chunk_bytes,
        "readers": config.slow_readers,
        "read_chunks": config.slow_read_chunks,
        "daemons": daemons,
    }


async def _round(
    children: Children, caller: Child, daemon: Child, readers_kind: tuple[str, bool] | None, config: Config
) -> dict[str, Any]:
    """One gated task of the caller's, with readers of `readers_kind` on it (None: none): the daemon's RSS at
    the gate before the readers come and once they are in place, at the task's second question, and after its
    end."""
    task_id = await _gate(caller)
    before = rss_mb(daemon.pid)
    readers = None if readers_kind is None else await _readers(children, *readers_kind, daemon, task_id, config)
    try:
        at_the_gate = rss_mb(daemon.pid)
        await caller.send_line(caller_module.GO)
        await _expect(caller, caller_module.WAIT + "end")
        at_the_end = rss_mb(daemon.pid)
        await caller.send_line(caller_module.GO)
    finally:
        if readers is not None:
            readers[0].process.send_signal(signal.SIGCONT)
            await children.stop(readers[0])
    return {
        "readers": 0 if readers is None else config.slow_readers,
        "readers_took_seconds": None if readers is None else readers[1]["seconds"],
        "rss_mb_before": before,
        "rss_mb_at_the_gate": at_the_gate,
        "rss_mb": at_the_end,
        "rss_mb_growth": at_the_end - before,  # from before the readers came to the task's second question
        "rss_mb_after": rss_mb(daemon.pid),  # the task ended (its next one waits at its gate), the readers gone
    }


async def _readers(
    children: Children, kind: str, frozen: bool, daemon: Child, task_id: str, config: Config
) -> tuple[Child, dict[str, Any]]:
    """`slow_readers` readers of the task that have read `slow_read_chunks` chunks each, their process frozen
    (SIGSTOP) if `frozen`."""
    args = ("-m", "bench.stream_readers", kind, daemon.address, task_id, str(config.slow_readers))
    args += (str(config.slow_read_chunks), "--size", str(config.stream_chunk_bytes))
    name = f"stream-readers-{kind}{'-frozen' if frozen else ''}"
    readers = await children.start(name, *args, ready_prefix=stream_readers.READY, drain=False)
    if frozen:
        readers.process.send_signal(signal.SIGSTOP)  # no reader reads its connection from now on
    ready: dict[str, Any] = json.loads(readers.ready_line.removeprefix(stream_readers.READY))
    return readers, ready


async def _start_caller(children: Children, name: str, what: str, daemon: Child, config: Config) -> Child:
    args = ("-m", "bench.stream_caller", what, daemon.address, config.mode)
    return await children.start(name, *args, ready_prefix=caller_module.READY, drain=False, stdin=True)


async def _gate(caller: Child) -> str:
    """Read up to the caller's `wait gate TASK_ID`; the task's id."""
    line = await _expect(caller, caller_module.WAIT + "gate ")
    return line.removeprefix(caller_module.WAIT + "gate ")


async def _expect(caller: Child, prefix: str) -> str:
    """Read the caller's lines up to one starting with `prefix` (the phases it passes meanwhile are only news)."""
    while not (line := await caller.read_line(_CALLER_SECONDS)).startswith(prefix):
        if not line.startswith(caller_module.PHASE):
            raise RuntimeError(f"{caller.name} said {line!r}, expected {prefix!r}")
    return line


def _found(line: str, errors: Errors) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(line.removeprefix(caller_module.RESULT))
    for name, count in found["errors"].items():
        errors.counts[name] += count
    for name, example in found["error_examples"].items():
        errors.examples.setdefault(name, example)
    return found
