"""The one table `make bench` prints: figure, median, min–max, ratio to the floor, and the issue's target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.config import FULL
from bench.procs import process_kind

# The store's bytes are measured for workflows of these sizes (the same in every mode).
CHAIN_SIZES, MAP_SIZES = FULL.workflow_bytes_chains, FULL.workflow_bytes_maps
STEADY_ROUNDS = FULL.retention_steady_rounds  # (9d)'s rounds (the same in every mode)


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    ratios: tuple[tuple[str, str], ...] = ()  # (ratio key in the document, what it is relative to)
    target: str = ""


# Each deployed path's tag in the table, by its prefix in the JSON.
TAGS = {
    "daemon_": "6",
    "daemon_memory_": "6m",
    "cluster_": "7",
    "cluster_2_callers_": "7c",
    "cluster_2_": "7b",
    "cluster_r3_": "7r",
}
# Scenario 8's stores, by prefix.
WORKFLOW_TAGS = {"workflow_": "8", "workflow_nats_": "8n"}
# Issue 25's targets for one daemon on one NATS server (`cluster_`), against the SQLite daemon of the same run.
_SQLITE_TARGETS = {
    "latency_ratio": "≤ 2× SQLite",
    "throughput_ratio": "≥ 0.5× SQLite",
    "daemon_cpu_ratio": "≤ 1.5× SQLite",
}


def _to_sqlite(prefix: str, ratio: str) -> tuple[tuple[str, str], ...]:
    return ((f"{prefix}{ratio}_to_sqlite", "SQLite"),) if prefix.startswith("cluster_") else ()


def _sqlite_target(prefix: str, ratio: str) -> str:
    return _SQLITE_TARGETS[ratio] if prefix == "cluster_" else ""


def _deployed_rows(prefix: str, tag: str, *, targets: bool) -> tuple[Row, ...]:
    """A deployed path's rows: its figures, held to the floor measured beside its rounds (its last rows); the
    shared paths' also to the SQLite daemon's."""
    cpu = "both daemons' CPU per task" if prefix == "cluster_2_" else "daemon CPU per task"
    rows = (
        Row(f"{prefix}task_p50_us", f"({tag}) no-op task latency p50", "µs",
            ((f"{prefix}latency_ratio", "unary"), *_to_sqlite(prefix, "latency_ratio")),
            "≤ 2.5× unary" if targets else _sqlite_target(prefix, "latency_ratio")),
        Row(f"{prefix}task_p99_us", f"({tag}) no-op task latency p99", "µs"),
        Row(f"{prefix}throughput_256", f"({tag}) no-op throughput, 256 in flight", "tasks/s",
            ((f"{prefix}throughput_ratio", "unary"), *_to_sqlite(prefix, "throughput_ratio")),
            "≥ 0.75× unary" if targets else _sqlite_target(prefix, "throughput_ratio")),
        Row(f"{prefix}daemon_cpu_us_per_task_256", f"({tag}) {cpu}, 256 in flight", "µs",
            _to_sqlite(prefix, "daemon_cpu_ratio"), _sqlite_target(prefix, "daemon_cpu_ratio")),
        Row(f"{prefix}submit_burst_per_s", f"({tag}) submitted one by one, then awaited", "tasks/s",
            ((f"{prefix}submit_burst_ratio", "unary seq."),), "≥ 0.6× unary seq." if targets else ""),
    )  # fmt: skip
    if prefix.startswith("daemon_"):
        target = "< 250" if targets else ""
        rows += (Row(f"{prefix}rss_mb_100k_queued", f"({tag}) daemon RSS, 100,000 queued", "MiB", target=target),)
    beside = (
        Row(f"{prefix}floor_unary_p50_us", f"({tag}) floor beside its rounds: unary p50", "µs"),
        Row(f"{prefix}floor_unary_throughput_256", f"({tag}) floor beside: unary, 256 in flight", "calls/s"),
        Row(f"{prefix}floor_unary_sequential_per_s", f"({tag}) floor beside: unary, one after the other", "calls/s"),
    )
    return (*rows, *beside)


def _callers_rows(prefix: str, tag: str, one: str) -> tuple[Row, ...]:
    """Two daemons, each fed by its own caller at once: no floor beside, held to one daemon's throughput (that of
    the variant tagged `one`)."""
    return (
        Row(f"{prefix}throughput_256", f"({tag}) no-op throughput, both callers together", "tasks/s",
            ((f"{prefix}throughput_ratio_to_one", f"one daemon ({one})"), *_to_sqlite(prefix, "throughput_ratio"))),
        Row(f"{prefix}caller_1_throughput_256", f"({tag}) caller 1 (at daemon 1), 256 in flight", "tasks/s"),
        Row(f"{prefix}caller_2_throughput_256", f"({tag}) caller 2 (at daemon 2), 256 in flight", "tasks/s"),
        Row(f"{prefix}daemon_cpu_us_per_task_256", f"({tag}) both daemons' CPU per task", "µs",
            _to_sqlite(prefix, "daemon_cpu_ratio")),
    )  # fmt: skip


def _workflow_rows(prefix: str, tag: str) -> tuple[Row, ...]:
    """Scenario 8's rows for one store: workflows held to single tasks through the same daemon."""
    bytes_rows = tuple(
        Row(f"{prefix}store_bytes_{shape}_{size}", f"({tag}) stored: a {label} of {size:,}", "bytes")
        for shape, label, sizes in (("chain", "chain", CHAIN_SIZES), ("map", "map", MAP_SIZES))
        for size in sizes
    )
    return (
        Row(f"{prefix}task_p50_us", f"({tag}) no-op task p50, between the chains", "µs"),
        Row(f"{prefix}chain_step_us", f"({tag}) chain of {{chain}} no-op steps: wall time / step, p50", "µs",
            ((f"{prefix}chain_step_ratio", "task p50"),), "≤ 1.5× task p50"),
        Row(f"{prefix}throughput_256", f"({tag}) no-op tasks, 256 in flight", "tasks/s"),
        Row(f"{prefix}map_elements_per_s", f"({tag}) map of {{elements}} no-op elements, {{concurrency}} at once",
            "elem/s", ((f"{prefix}map_throughput_ratio", "256 in flight"),), "≥ 0.5× 256 in flight"),
        Row(f"{prefix}daemon_cpu_us_per_task_256", f"({tag}) daemon CPU per task, 256 in flight", "µs"),
        Row(f"{prefix}daemon_cpu_us_per_element", f"({tag}) daemon CPU per map element", "µs"),
        *bytes_rows,
        Row(f"{prefix}store_bytes_per_step", f"({tag}) stored per chain step (the line's slope)", "bytes"),
    )  # fmt: skip


def _time_rows() -> tuple[Row, ...]:
    """Scenario 9's rows: delayed tasks (9a, 9b) and retention (9c, 9d) through one daemon on SQLite."""
    steady = tuple(
        Row(f"retention_steady_db_mib_round_{n}", f"(9d) database after round {n} and its sweep", "MiB")
        for n in range(1, STEADY_ROUNDS + 1)
    )
    return (
        Row("delayed_idle_cpu_share", "(9a) daemon CPU, idle (no task)", "core"),
        Row("delayed_waiting_cpu_share", "(9a) daemon CPU, {delayed} delayed tasks waiting", "core",
            target="= idle"),
        Row("delayed_idle_rss_mb", "(9a) daemon RSS, idle", "MiB"),
        Row("delayed_waiting_rss_mb", "(9a) daemon RSS, {delayed} delayed tasks waiting", "MiB"),
        Row("delayed_lateness_p50_ms", "(9b) delayed task's start after its not_before: p50", "ms"),
        Row("delayed_lateness_p99_ms", "(9b) the same: p99", "ms", target="≤ 50 ms"),
        Row("delayed_lateness_max_ms", "(9b) the same: max", "ms"),
        Row("delayed_lateness_min_ms", "(9b) the same: min (negative: early)", "ms", target="≥ 0"),
        Row("retention_task_p50_us", "(9c) no-op task p50, {filled} finished in the store", "µs"),
        Row("retention_task_p99_us", "(9c) no-op task p99, the same", "µs"),
        Row("retention_sweep_task_p50_us", "(9c) no-op task p50 while a sweep drops them", "µs",
            (("retention_sweep_latency_ratio", "without"),)),
        Row("retention_sweep_task_p99_us", "(9c) no-op task p99 while it does", "µs",
            (("retention_sweep_p99_ratio", "without"),)),
        Row("retention_sweep_seconds", "(9c) the sweep's time", "s"),
        Row("retention_swept_tasks", "(9c) tasks it dropped", "tasks"),
        *steady,
        Row("retention_steady_growth_mib", "(9d) growth from round 1 to the last", "MiB", target="≈ 0"),
    )  # fmt: skip


def _stream_rows() -> tuple[Row, ...]:
    """Scenario 10's rows: streamed chunks (10a), the daemon's RSS with readers (10b), input requests (10c)."""
    readers = (
        ("slow_watchers", "after its stream, {readers} WatchTask readers stalled"),
        ("live_readers", "after its stream, {readers} RemoteOrchestrator readers reading on"),
        ("slow_readers", "after its stream, {readers} RemoteOrchestrator readers stalled"),
    )
    return (
        Row("stream_chunks_per_s", "(10a) {chunks} chunks of {chunk_bytes} B from one handler, in order", "chunks/s",
            (("stream_chunk_ratio", "bare stream"),), "≥ 0.5× bare stream"),
        Row("stream_floor_chunks_per_s", "(10a) floor beside: bare grpc.aio server stream of as many", "msgs/s"),
        Row("stream_rss_mb_before", "(10b) daemon RSS, a streaming task at its gate, no reader yet", "MiB"),
        Row("stream_rss_mb_growth_alone", "(10b) what its stream adds with no reader but the caller", "MiB"),
        *(
            Row(f"stream_rss_mb_{name}", f"(10b) {label}", "MiB",
                ((f"stream_rss_ratio_{name}", "before"),), "≈ before + alone" if name == "slow_readers" else "")
            for name, label in readers
        ),
        Row("input_resume_p50_us", "(10c) provide_input to the task's result: p50", "µs",
            (("input_resume_ratio", "no-op p50"),), "≤ 3× no-op p50"),
        Row("input_resume_p99_us", "(10c) the same: p99", "µs"),
        Row("input_noop_p50_us", "(10c) no-op task p50, in the same rounds", "µs"),
        Row("input_noop_p99_us", "(10c) no-op task p99", "µs"),
    )  # fmt: skip


SECTIONS: tuple[tuple[str, tuple[Row, ...]], ...] = (
    (
        "floor: bare grpc.aio, 2 processes",
        (
            Row("floor_unary_p50_us", "unary latency p50", "µs"),
            Row("floor_unary_p99_us", "unary latency p99", "µs"),
            Row("floor_unary_throughput_64", "unary throughput, 64 in flight", "calls/s"),
            Row("floor_unary_throughput_256", "unary throughput, 256 in flight", "calls/s"),
            Row("floor_unary_throughput_256_2servers", "same, over 2 server processes", "calls/s"),
            Row("floor_seed_p50_us", "seed shape (unary + 3-msg stream) p50", "µs"),
            Row("floor_seed_p99_us", "seed shape p99", "µs"),
            Row("floor_seed_throughput_256", "seed shape throughput, 256 in flight", "tasks/s"),
            Row("floor_heartbeat_p50_ms", "(4)'s heartbeat load, constant answer: p50", "ms"),
            Row("floor_heartbeat_p99_ms", "(4)'s heartbeat load: p99", "ms"),
            Row("floor_heartbeat_cpu_share", "(4)'s heartbeat load: server CPU", "core"),
        ),
    ),
    (
        "tasks: AsyncOrchestrator -> 2 worker processes",
        (
            Row(
                "task_p50_us",
                "(1) no-op task latency p50",
                "µs",
                (("latency_ratio", "unary"), ("latency_ratio_to_seed_shape", "seed")),
                "≤ 1.5× unary",
            ),
            Row("task_p99_us", "(1) no-op task latency p99", "µs", (("latency_p99_ratio", "unary p99"),)),
            Row("sync_task_p50_us", "(1) same, blocking Orchestrator, p50", "µs", (("sync_latency_ratio", "unary"),)),
            Row("sync_task_p99_us", "(1) same, blocking Orchestrator, p99", "µs"),
            Row(
                "task_throughput_256",
                "(2) no-op throughput, 256 in flight",
                "tasks/s",
                (
                    ("throughput_ratio", "unary"),
                    ("throughput_ratio_to_2servers", "unary 2 srv"),
                    ("throughput_ratio_to_seed_shape", "seed"),
                ),
                "≥ 0.75× unary",
            ),
            Row("sleep_throughput_1000", "(3) 10 ms tasks, 1,000 in flight", "tasks/s"),
        ),
    ),
    (
        "registry: wa registry process, simulated workers",
        (
            Row("registry_heartbeat_p50_ms", "(4) heartbeat p50, {workers} workers @ {rate}/s", "ms"),
            Row(
                "registry_heartbeat_p99_ms",
                "(4) heartbeat p99",
                "ms",
                (("registry_heartbeat_p99_ratio", "bare server"),),
                "< 10 ms",
            ),
            Row(
                "registry_cpu_share",
                "(4) registry CPU, fraction of one core",
                "core",
                (("registry_cpu_ratio", "bare server"),),
                "< 0.5",
            ),
            Row("registry_register_seconds_10k", "(4) register 10,000 workers", "s"),
            Row("registry_rss_mb_10k_workers", "(4) registry RSS with 10,000 workers", "MiB", target="< 200"),
        ),
    ),
    (
        "queue: AsyncOrchestrator process, one worker with its only slot taken",
        (
            Row("orchestrator_rss_mb_100k_queued", "(5) orchestrator RSS, 100,000 queued", "MiB", target="< 500"),
            Row("orchestrator_queue_seconds_100k", "(5) time to queue them", "s"),
        ),
    ),
    *(
        (title, _deployed_rows(prefix, TAGS[prefix], targets=prefix == "daemon_"))
        for title, prefix in (
            (
                "daemon: wa orchestrator process with its SQLite store, RemoteOrchestrator in a caller process",
                "daemon_",
            ),
            ("daemon: the same with --store :memory:", "daemon_memory_"),
            ("cluster: wa orchestrator --store nats:// (one NATS server)", "cluster_"),
        )
    ),
    (
        "cluster: two daemons on one NATS server, each fed by a caller of its own, both at once",
        _callers_rows("cluster_2_callers_", TAGS["cluster_2_callers_"], TAGS["cluster_"]),
    ),
    *(
        (title, _deployed_rows(prefix, TAGS[prefix], targets=False))
        for title, prefix in (
            ("cluster: two daemons on one NATS server, one caller at the first, which runs its tasks", "cluster_2_"),
            ("cluster: one daemon on a 3-node NATS cluster, everything in 3 copies", "cluster_r3_"),
        )
    ),
    (
        "workflows: wa orchestrator with its SQLite store, RemoteOrchestrator in a caller process",
        _workflow_rows("workflow_", WORKFLOW_TAGS["workflow_"]),
    ),
    (
        "workflows: wa orchestrator --store nats:// (one NATS server)",
        _workflow_rows("workflow_nats_", WORKFLOW_TAGS["workflow_nats_"]),
    ),
    (
        "time and flow control: wa orchestrator with its SQLite store, delayed tasks and retention",
        _time_rows(),
    ),
    (
        "streaming and input: wa orchestrator with its SQLite store, one StreamWorker, RemoteOrchestrator callers",
        _stream_rows(),
    ),
)


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if 0 < abs(value) < 0.01:  # (a share of a core that small still says something)
        return f"{value:.2g}"
    return f"{value:.2f}"


def table(doc: dict[str, Any]) -> str:
    """The figures of a results document as an aligned text table."""
    header = ("figure", "median", "min–max", "unit", "ratio to floor", "target")
    lines: list[tuple[str, ...]] = []
    unsound: dict[str, str] = doc.get("unsound_floors") or {}
    left_out = set(doc.get("ratios_to_unsound_floors") or ())
    for title, rows in SECTIONS:
        lines.append((f"-- {title}",))
        for row in rows:
            spread = doc["figures"].get(row.key)
            ratios = ", ".join(
                "n/a: floor unsound" if key in left_out else f"{_number(doc[key])}× {what}"
                for key, what in row.ratios
                if doc.get(key) is not None or key in left_out
            )
            if row.key in unsound:
                ratios = "UNSOUND FLOOR (see below)"
            lines.append(
                (
                    "  " + _label(row.label, doc),
                    _number(doc.get(row.key)),
                    f"{_number(spread['min'])}–{_number(spread['max'])}" if spread else "",
                    row.unit,
                    ratios,
                    row.target,
                )
            )
    cells = [header, *(line for line in lines if len(line) > 1)]  # section titles do not set widths
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    out = [_format(header, widths), _format(tuple("-" * w for w in widths), widths)]
    for line in lines:
        out.append(line[0] if len(line) == 1 else _format(line, widths))
    footer = f"mode {doc['mode']}, {doc['rounds']} rounds per figure (median, min–max), {doc['duration_seconds']}s"
    machine = doc["machine"]
    out.append(
        f"{footer}; {machine['cpu_count']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"grpcio {machine['grpcio']}, {machine['event_loop']}, git {machine['git']}"
    )
    foreign = doc["details"].get("foreign_cpu_share") or {}
    if foreign:
        worst = max(foreign, key=foreign.__getitem__)
        note = " (figures disturbed; rerun on a quiet machine)" if foreign[worst] > 0.1 else ""
        out.append(f"other processes on the machine: up to {foreign[worst]:.2f} of a core, during {worst}{note}")
    store = doc["details"].get("daemon_store_probe")
    if store:
        out.append(_store_line(store))
    out.extend(cpu_lines(doc))
    out.extend(model_lines(doc))
    out.extend(growth_lines(doc))
    out.extend(time_lines(doc))
    out.extend(stream_lines(doc))
    reasons: dict[str, list[str]] = {}
    for key, why in unsound.items():
        reasons.setdefault(why, []).append(key)
    out.extend(f"UNSOUND FLOOR {', '.join(keys)}: {why}; no ratio is taken to it" for why, keys in reasons.items())
    if doc["failures"]:
        out.extend(f"FAILED {name}: {message}" for name, message in doc["failures"].items())
    return "\n".join(line.rstrip() for line in out)


def _store_line(store: dict[str, Any]) -> str:
    line = (
        f"(6)'s SQLite store alone on its disk: fsync of 4 KiB {_number(store['fsync_4k_p50_us'])} µs; one task after"
        f" another {_number(store['tasks_per_s'])}/s, commit p50 {_number(store['commit_p50_us'])} µs,"
        f" p99 {_number(store['commit_p99_us'])} µs"
    )
    if store["checkpoints"]:
        line += (
            f"; {store['checkpoints']} checkpoints of {_number(store['checkpoint_p50_ms'])} ms (p50), commits waited"
            f" {_number(store['held_p50_ms'])} ms (p50, max {_number(store['held_max_ms'])}) for"
            f" {store['commits_waiting_share'] * 100:.2g} % of them"
        )
    return line


# The kinds of process a deployed path's CPU is charged to, in the order the line gives them.
_KIND_NAMES = {"daemon": ("daemon", "daemons"), "nats": ("nats-server", "nats-servers"),
               "caller": ("caller", "callers"), "workers": ("workers", "workers")}  # fmt: skip


def cpu_lines(doc: dict[str, Any]) -> list[str]:
    """Each deployed path's CPU per task at 256 in flight, by kind of process (over all its rounds)."""
    lines = []
    for prefix, tag in TAGS.items():
        cpu: dict[str, float] | None = doc["details"].get(f"{prefix}cpu_us_per_task_256")
        if not cpu or "total" not in cpu:
            continue
        parts = []
        for kind, (one, several) in _KIND_NAMES.items():
            if kind not in cpu:
                continue
            numbered = [value for name, value in cpu.items() if name != kind and process_kind(name) == kind]
            each = f" ({' + '.join(_number(value) for value in numbered)})" if len(numbered) > 1 else ""
            name = several if len(numbered) > 1 else one
            parts.append(f"{name} {_number(cpu[kind])}{each}")
        lines.append(f"  ({tag}) {', '.join(parts)}: {_number(cpu['total'])} in all")
    if lines:
        lines.insert(0, "CPU per task at 256 in flight, µs (all rounds):")
    return lines


def model_lines(doc: dict[str, Any]) -> list[str]:
    """What N daemons on N cores would reach, from a variant's CPU per task (see bench/model.py)."""
    lines = []
    for prefix, made in (doc["details"].get("cluster_model") or {}).items():
        tag = TAGS[prefix]
        reach = ", ".join(f"{n} → {_number(value)}" for n, value in made["throughput"].items())
        saturates = made["nats_saturates_at_daemons"]
        full = "never seen" if saturates is None else f"N ≈ {saturates:.1f}"
        lines.append(
            f"model from ({tag})'s CPU per task (daemon {_number(made['daemon_cpu_us_per_task'])} µs, nats-server"
            f" {_number(made['nats_cpu_us_per_task'])} µs), N daemons on N cores: {reach} tasks/s (nats-server's"
            f" core full from {full})"
        )
        cores = made["machine_cores"]
        busy = "" if made["busy_cores"] is None else f", which kept {made['busy_cores']:.2f} of {cores} cores busy"
        lines.append(
            f"  here every process shared {cores} cores: at most {cores} × 1e6 /"
            f" {_number(made['machine_total_cpu_us_per_task'])} µs = {_number(made['machine_ceiling'])} tasks/s;"
            f" measured {_number(made['measured_throughput_256'])}{busy}"
        )
    return lines


def growth_lines(doc: dict[str, Any]) -> list[str]:
    """How each store's bytes grow with a workflow's steps: bytes per step at each size measured, and the
    straight line through them (for the chains and for the maps)."""
    lines = []
    for prefix, tag in WORKFLOW_TAGS.items():
        growth: dict[str, dict[str, Any]] | None = doc["details"].get(f"{prefix}store_growth")
        if not growth:
            continue
        for shape, line in growth.items():
            sizes = ", ".join(f"{int(size):,} → {_number(per)}" for size, per in line["bytes_per_step"].items())
            off = line["worst_deviation"]
            fit = "" if off is None else f", the farthest size {off * 100:.2g} % off it"
            fixed = line["per_workflow"]
            lines.append(
                f"({tag}) stored bytes per step, {shape}s of {sizes}; line: {_number(line['per_step'])} per step"
                f" {'-' if fixed < 0 else '+'} {_number(abs(fixed))} per workflow{fit}"
            )
    return lines


def time_lines(doc: dict[str, Any]) -> list[str]:
    """Scenario 9 beyond its rows: the daemon's CPU to the nanosecond, the delayed tasks' end, the sweep's
    pace, and the store's files after each round of the steady load."""
    found: dict[str, Any] = doc["details"].get("time_flow") or {}
    lines = []
    delayed = found.get("delayed")
    if delayed:
        lines.append(
            f"(9a) daemon CPU from its threads' run time (schedstat): idle {delayed['idle_cpu_share_schedstat']:.5f},"
            f" with {delayed['tasks']:,} delayed tasks waiting {delayed['waiting_cpu_share_schedstat']:.5f} of a core;"
            f" they were submitted in {delayed['seconds']:.1f} s, {delayed['finished']:,} ran to their end"
        )
    firing = found.get("firing")
    if firing:
        rounds = firing["rounds"]
        earliest = min(one["min_ms"] for one in rounds)
        when = f"at most {-earliest:.2f} ms before" if earliest < 0 else f"the earliest {earliest:.2f} ms after"
        lines.append(
            f"(9b) {firing['early']} of {sum(one['tasks'] for one in rounds):,} delayed tasks started before their"
            f" not_before ({when}); p99 of every round's tasks together {_number(firing['all_rounds_p99_ms'])} ms"
        )
    sweep = found.get("sweep")
    if sweep:
        filled = sweep["filled"]
        pace = sweep["swept_per_s"]
        lines.append(
            f"(9c) store filled with {filled['tasks']:,} tasks through the daemon in {filled['seconds']:.1f} s"
            f" ({filled['store']['database_bytes'] / 2**20:.1f} MiB); the sweep dropped"
            f" {_number(pace) if pace else '?'} tasks/s; {sweep['tasks_before']:,} tasks measured before it,"
            f" {sweep['tasks_during']:,} during it (the slowest {sweep['max_during_us'] / 1e3:.1f} ms, begun"
            f" {sweep['slowest_began_after_sweep_seconds']:.2f} s after the sweep began)"
        )
    steady = found.get("steady")
    if steady:
        files = ", ".join(
            f"{one['file_bytes'] / 2**20:.1f} + {one['log_bytes'] / 2**20:.1f}" for one in steady["rounds"]
        )
        lines.append(
            f"(9d) {steady['tasks_per_round']:,} tasks a round; the file and its log on disk after each round, MiB:"
            f" {files}"
        )
    return lines


def stream_lines(doc: dict[str, Any]) -> list[str]:
    """Scenario 10b beyond its rows: on each kind of reader's daemon, how much its RSS grew while a task streamed
    with no reader but the caller, and while the next one streamed past the readers (from its gate, before they
    came, to its second question), and where it stood once that task and the readers were gone."""
    slow: dict[str, Any] = doc["details"].get("stream_slow") or {}
    daemons: dict[str, dict[str, Any]] = slow.get("daemons") or {}
    if not daemons:
        return []
    lines = [
        f"(10b) daemon RSS growth while a task streamed {slow['chunks_per_task']:,} chunks of {slow['chunk_bytes']} B,"
        f" MiB, with no reader but the caller / with {slow['readers']:,} readers (then, the task and the readers gone):"
    ]
    for name, one in daemons.items():
        alone, readers = one["alone"], one["with_readers"]
        lines.append(
            f"  {name.replace('_', ' ')}: {alone['rss_mb_growth']:+.1f} / {readers['rss_mb_growth']:+.1f}"
            f" (then {readers['rss_mb_after']:.1f}); idle {one['idle_rss_mb']:.1f}"
        )
    return lines


def _label(label: str, doc: dict[str, Any]) -> str:
    """A row's label with the load the run chose filled in (the registry's heartbeat rate is calibrated; the
    workflows' sizes depend on the mode)."""
    details = doc.get("details") or {}
    workers, rate = details.get("registry_heartbeat_workers"), details.get("registry_heartbeat_rate_per_worker")
    shapes = details.get("workflow_shapes") or {}
    timing = details.get("time_flow") or {}
    delayed = (timing.get("delayed") or {}).get("tasks")
    filled = ((timing.get("sweep") or {}).get("filled") or {}).get("tasks")
    stream = details.get("stream_shapes") or {}
    return label.format(
        chunks=f"{stream['chunks']:,}" if stream else "?",
        chunk_bytes=f"{stream['chunk_bytes']:,}" if stream else "?",
        readers=f"{stream['readers']:,}" if stream else "?",
        delayed=f"{delayed:,}" if delayed else "?",
        filled=f"{filled:,}" if filled else "?",
        workers=f"{workers:,}" if workers else "?",
        rate=f"{rate:g}" if rate else "?",
        chain=f"{shapes['chain_steps']:,}" if shapes else "?",
        elements=f"{shapes['map_elements']:,}" if shapes else "?",
        concurrency=f"{shapes['map_concurrency']:,}" if shapes else "?",
    )


def _format(cells: tuple[str, ...], widths: list[int]) -> str:
    left = {0, 3, 4, 5}
    return "  ".join(
        c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
