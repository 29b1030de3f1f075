"""The whole suite: run each scenario group in turn, then derive ratios and assemble the JSON document."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

import worker_abstraction
from bench import floor, model
from bench.config import FULL, Config
from bench.loops import loop_name
from bench.measure import Figure, Results
from bench.procs import REPO, Children, ForeignCpu
from bench.scenarios import cluster, daemon, queue, registry, streaming, tasks, time_flow, workflows

Scenario = Callable[[Children, Config], Awaitable[Results]]

SCENARIOS: tuple[tuple[str, Scenario], ...] = (
    ("floor", floor.measure),
    ("tasks", tasks.measure),
    ("registry heartbeats", registry.measure_heartbeats),
    ("registry registration", registry.measure_registration),
    ("queue", queue.measure),
    ("daemon", daemon.measure),
    ("cluster", cluster.measure),
    ("workflows", workflows.measure),
    ("time and flow control", time_flow.measure),
    ("streaming and input", streaming.measure),
)

# The keys issue 3 requires in latest.json (null when a scenario could not run).
REQUIRED_KEYS = (
    "floor_unary_p50_us",
    "task_p50_us",
    "latency_ratio",
    "floor_unary_throughput_256",
    "task_throughput_256",
    "throughput_ratio",
    "registry_heartbeat_p99_ms",
    "registry_cpu_share",
    "registry_rss_mb_10k_workers",
    "orchestrator_rss_mb_100k_queued",
)

# The deployed paths (a caller program, a daemon): each figure is held to the floor measured beside its rounds.
DEPLOYED_PREFIXES = ("daemon_", "daemon_memory_", *cluster.PREFIXES)

# Scenario 8's figures, for each store: measured each round, and the store's bytes (measured once).
WORKFLOW_ROUND_KEYS = tuple(
    f"{prefix}{name}" for prefix in workflows.PREFIXES for name in (*workflows.ROUND_FIGURES, *workflows.CPU_FIGURES)
)
WORKFLOW_BYTES_KEYS = tuple(f"{prefix}{name}" for prefix in workflows.PREFIXES for name in workflows.bytes_keys(FULL))

# Figures every complete run has; a failed scenario leaves its own as null.
FIGURE_KEYS = (
    "floor_unary_p50_us",
    "floor_unary_p99_us",
    "floor_unary_throughput_64",
    "floor_unary_throughput_256",
    "floor_unary_throughput_256_2servers",
    "floor_seed_p50_us",
    "floor_seed_p99_us",
    "floor_seed_throughput_256",
    "task_p50_us",
    "task_p99_us",
    "sync_task_p50_us",
    "sync_task_p99_us",
    "task_throughput_256",
    "sleep_throughput_1000",
    "registry_heartbeat_p50_ms",
    "registry_heartbeat_p99_ms",
    "registry_cpu_share",
    "floor_heartbeat_p50_ms",
    "floor_heartbeat_p99_ms",
    "floor_heartbeat_cpu_share",
    "registry_register_seconds_10k",
    "registry_rss_mb_10k_workers",
    "orchestrator_rss_mb_100k_queued",
    "orchestrator_queue_seconds_100k",
    "floor_unary_sequential_per_s",
    *(f"{prefix}rss_mb_100k_queued" for prefix in ("daemon_", "daemon_memory_")),
    *(
        f"{prefix}{name}"
        for prefix in DEPLOYED_PREFIXES
        for name in (
            "task_p50_us",
            "task_p99_us",
            "throughput_256",
            "submit_burst_per_s",
            "floor_unary_p50_us",
            "floor_unary_throughput_256",
            "floor_unary_sequential_per_s",
            "daemon_cpu_us_per_task_256",
        )
    ),
    *(
        f"{prefix}{name}"
        for prefix in cluster.CALLERS_PREFIXES
        for name in (
            "throughput_256",
            *(f"caller_{i}_throughput_256" for i in range(1, cluster.CALLERS + 1)),
            "daemon_cpu_us_per_task_256",
        )
    ),
    *WORKFLOW_ROUND_KEYS,
    *WORKFLOW_BYTES_KEYS,
    *time_flow.FIGURE_KEYS,
    *streaming.FIGURE_KEYS,
)

# Figures measured once per run (filling a daemon's queue with 100,000 tasks takes a minute a time; a store's
# bytes for a workflow do not change from one round to the next; scenario 9 waits out a delay and fills a store
# once).
SINGLE_ROUND_KEYS = (
    "daemon_rss_mb_100k_queued",
    "daemon_memory_rss_mb_100k_queued",
    *WORKFLOW_BYTES_KEYS,
    *time_flow.SINGLE_ROUND_KEYS,
    *streaming.SINGLE_ROUND_KEYS,
)
# Figures measured in fewer than 3 rounds (the two callers' variants are kept short: bench.config.CLUSTER_CALLERS).
ROUNDS_OF = dict.fromkeys(SINGLE_ROUND_KEYS, 1) | {
    key: 2 for key in FIGURE_KEYS if key.startswith(tuple(cluster.CALLERS_PREFIXES))
}

# ratio name -> (numerator, denominator): framework figure over the floor measured in the same run, or over
# another path's figure.
RATIOS = {
    "latency_ratio": ("task_p50_us", "floor_unary_p50_us"),
    "throughput_ratio": ("task_throughput_256", "floor_unary_throughput_256"),
    "throughput_ratio_to_2servers": ("task_throughput_256", "floor_unary_throughput_256_2servers"),
    "latency_p99_ratio": ("task_p99_us", "floor_unary_p99_us"),
    "sync_latency_ratio": ("sync_task_p50_us", "floor_unary_p50_us"),
    "latency_ratio_to_seed_shape": ("task_p50_us", "floor_seed_p50_us"),
    "throughput_ratio_to_seed_shape": ("task_throughput_256", "floor_seed_throughput_256"),
    "registry_cpu_ratio": ("registry_cpu_share", "floor_heartbeat_cpu_share"),
    "registry_heartbeat_p99_ratio": ("registry_heartbeat_p99_ms", "floor_heartbeat_p99_ms"),
    # The shared (NATS) paths next to the SQLite daemon (issue 25's targets are for one daemon, `cluster_`:
    # latency <= 2x, throughput >= 0.5x, the daemon's CPU per task <= 1.5x). Scenarios minutes apart: medians, not
    # paired.
    **{
        f"{prefix}{ratio}_to_sqlite": (f"{prefix}{figure}", f"daemon_{figure}")
        for prefix in (*cluster.PREFIXES, *cluster.CALLERS_PREFIXES)
        for ratio, figure in (
            ("latency_ratio", "task_p50_us"),
            ("throughput_ratio", "throughput_256"),
            ("daemon_cpu_ratio", "daemon_cpu_us_per_task_256"),
        )
        if not (prefix in cluster.CALLERS_PREFIXES and ratio == "latency_ratio")
    },
    # Sequential tasks while a retention sweep runs against the same before it, through the same daemon.
    "retention_sweep_latency_ratio": ("retention_sweep_task_p50_us", "retention_task_p50_us"),
    "retention_sweep_p99_ratio": ("retention_sweep_task_p99_us", "retention_task_p99_us"),
    # The daemon's RSS once a task streamed past its readers, against its RSS at the task's gate before they came
    # (the median of the three daemons', one per kind of reader).
    **{
        f"stream_rss_ratio_{name}": (f"stream_rss_mb_{name}", "stream_rss_mb_before") for name in streaming.READER_KINDS
    },
    # Two daemons, each fed by its own caller, against one daemon fed by one caller.
    **{
        f"{prefix}throughput_ratio_to_one": (f"{prefix}throughput_256", f"{one}throughput_256")
        for prefix, one in cluster.CALLERS_PREFIXES.items()
    },
}
# The same for the deployed paths, whose rounds each follow a floor round of their own: the median of the
# rounds' ratios (each round to the floor measured just before it).
PAIRED_RATIOS = {
    **{
        f"{prefix}{ratio}": (f"{prefix}{figure}", f"{prefix}{floor}")
        for prefix in DEPLOYED_PREFIXES
        for ratio, figure, floor in (
            ("latency_ratio", "task_p50_us", "floor_unary_p50_us"),
            ("throughput_ratio", "throughput_256", "floor_unary_throughput_256"),
            ("submit_burst_ratio", "submit_burst_per_s", "floor_unary_sequential_per_s"),
        )
    },
    # Workflows against single tasks through the same daemon, each round's pair from the same minutes.
    **{
        f"{prefix}{ratio}": (f"{prefix}{figure}", f"{prefix}{tasks}")
        for prefix in workflows.PREFIXES
        for ratio, figure, tasks in (
            ("chain_step_ratio", "chain_step_us", "task_p50_us"),
            ("map_throughput_ratio", "map_elements_per_s", "throughput_256"),
        )
    },
    # Streamed chunks against a bare gRPC server stream of the same messages just before each round, and the
    # resumption of a task that asked for input against no-op tasks in the same rounds.
    "stream_chunk_ratio": ("stream_chunks_per_s", "stream_floor_chunks_per_s"),
    "input_resume_ratio": ("input_resume_p50_us", "input_noop_p50_us"),
}


async def run_suite(config: Config, log_dir: Path) -> dict[str, Any]:
    """Run every scenario (a failing one is recorded and the rest still run) and return the JSON document."""
    began = time.perf_counter()
    results = Results()
    failures: dict[str, str] = {}
    quiet: dict[str, float] = {}
    _clear_logs(log_dir)
    for name, scenario in SCENARIOS:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started, foreign = time.perf_counter(), ForeignCpu()
        try:
            async with Children(log_dir) as children:
                results.merge(await scenario(children, config))
        except Exception as error:
            failures[name] = f"{type(error).__name__}: {error}"
            print(f"[bench] {name} FAILED:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        quiet[name] = foreign.share()
        print(
            f"[bench] {name} took {time.perf_counter() - started:.1f}s"
            f" (other processes used {quiet[name]:.2f} of a core meanwhile)",
            file=sys.stderr,
            flush=True,
        )
    results.extras["foreign_cpu_share"] = quiet
    return document(config, results, failures, time.perf_counter() - began, log_dir)


def document(
    config: Config, results: Results, failures: dict[str, str], seconds: float, log_dir: Path
) -> dict[str, Any]:
    """Medians at the top level (the issue's keys first), then ratios, spreads, details and the machine."""
    medians: dict[str, float | None] = {key: None for key in FIGURE_KEYS}
    medians.update({key: figure.median for key, figure in results.figures.items()})
    ratios = {name: _ratio(medians.get(num), medians.get(den)) for name, (num, den) in RATIOS.items()}
    figures = results.figures
    ratios |= {name: _paired(figures.get(num), figures.get(den)) for name, (num, den) in PAIRED_RATIOS.items()}
    # A ratio to a floor that did not measure the floor (a saturated machine) would say nothing: it is left out.
    left_out = sorted(name for name, (_, den) in (RATIOS | PAIRED_RATIOS).items() if den in results.unsound)
    ratios |= dict.fromkeys(left_out)
    values: dict[str, Any] = medians | ratios
    doc: dict[str, Any] = {key: values[key] for key in REQUIRED_KEYS}
    doc.update({key: value for key, value in values.items() if key not in doc})
    doc["mode"] = config.mode
    doc["rounds"] = config.rounds
    doc["figures"] = {key: _spread(figure) for key, figure in results.figures.items()}
    doc["details"] = results.extras | {
        "cluster_model": model.models(medians, results.extras, os.cpu_count() or 1),
        "child_log_warnings": _log_warnings(log_dir),
    }
    doc["failures"] = failures
    doc["unsound_floors"] = results.unsound  # floor figure -> why it is not a floor (empty: every one is)
    doc["ratios_to_unsound_floors"] = left_out  # null above for that reason
    doc["duration_seconds"] = round(seconds, 1)
    doc["timestamp"] = datetime.now(UTC).isoformat(timespec="seconds")
    doc["machine"] = machine()
    return doc


def _clear_logs(log_dir: Path) -> None:
    for stale in log_dir.glob("*.log"):
        stale.unlink()


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _paired(numerator: Figure | None, denominator: Figure | None) -> float | None:
    if numerator is None or denominator is None or len(numerator.rounds) != len(denominator.rounds):
        return None
    if not all(denominator.rounds):
        return None
    return statistics.median(top / bottom for top, bottom in zip(numerator.rounds, denominator.rounds, strict=True))


def _spread(figure: Figure) -> dict[str, Any]:
    return {"median": figure.median, "min": figure.low, "max": figure.high, "rounds": list(figure.rounds)}


_LEVEL = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL)\b")


def _log_warnings(log_dir: Path) -> dict[str, dict[str, int]]:
    """WARNING/ERROR lines in each child's stderr log (the logs themselves stay in log_dir)."""
    found: dict[str, dict[str, int]] = {}
    for path in sorted(log_dir.glob("*.log")):
        counts: dict[str, int] = {}
        for line in path.read_text(errors="replace").splitlines():
            match = _LEVEL.match(line)
            if match or line.startswith("Traceback"):
                level = match.group(1) if match else "Traceback"
                counts[level] = counts.get(level, 0) + 1
        if counts:
            found[path.stem] = counts
    return found


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "event_loop": loop_name(),
        "worker_abstraction": worker_abstraction.__version__,
        "git": _git_revision(),
        "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _git_revision() -> str | None:
    """HEAD's short hash, with `+dirty` when the library or the contract has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "proto"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+dirty" if dirty else head
