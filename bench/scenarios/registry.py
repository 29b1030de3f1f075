"""Scenario 4: the registry (`wa registry` process) under simulated workers from a load-generator process.

- heartbeats: 2,000 workers beating once a second each (or less often: see below); per ~10 s window,
  heartbeat p50/p99 as the load generator saw them and the registry's CPU share (utime+stime from /proc
  over the window's wall time); the same load then goes to the floor server, which answers a constant;
- calibration: the floor only says what gRPC costs while the machine carries the load with room to spare.
  On 2 vCPUs the load generator and a server share the cores, and a load they cannot carry measures the
  machine's saturation (the constant-answer server once showed a p50 of 970 ms): so the load is chosen
  first, against the floor server, as the highest rate per worker in `config.heartbeat_rates` at which the
  floor's p50 stays near an idle beat's (`bench.measure.loaded_latency_is_sound`), and a floor that was not
  near it in the measured windows is reported unsound (`Results.unsound`) rather than held to;
- registration: 10,000 workers registered into a fresh registry; the time it took and the registry's
  RSS afterwards (one fresh registry per round).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from bench import floor
from bench.config import Config
from bench.measure import Figure, Results, loaded_latency_is_sound
from bench.procs import Child, Children, cpu_seconds, rss_mb
from bench.scenarios.tasks import start_registry


@dataclass
class _Windows:
    """What one heartbeat run saw, window by window."""

    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_share: list[float] = field(default_factory=list)
    loadgen_share: list[float] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    register_seconds: float = 0.0

    def cpu_us_per_beat(self) -> float | None:
        beats = sum(w["beats"] for w in self.windows)
        used = sum(share * w["seconds"] for share, w in zip(self.cpu_share, self.windows, strict=True))
        return used / beats * 1e6 if beats else None

    def errors(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for window in self.windows:
            for name, count in window["errors"].items():
                total[name] = total.get(name, 0) + count
        return total


@dataclass(frozen=True)
class _Calibration:
    """The load chosen against the floor server: beats per worker per second, and an idle beat's p50."""

    rate: float
    unloaded_p50_ms: float
    steps: list[dict[str, Any]]


def _fleet_args(config: Config, target: Child) -> list[str]:
    # The beats go as our workers send them: messages on one HeartbeatStream per worker.
    args = ["--registry", target.address, "--stream", "--workers", str(config.heartbeat_workers)]
    return [*args, "--channels", str(config.heartbeat_channels)]


async def _calibrate(children: Children, config: Config, floor_server: Child) -> _Calibration:
    """The highest rate of `config.heartbeat_rates` at which the floor server's p50 stays near an idle beat's."""
    args = ["-m", "bench.loadgen", "calibrate", *_fleet_args(config, floor_server)]
    args += ["--rates", ",".join(str(rate) for rate in config.heartbeat_rates)]
    args += ["--warmup", str(config.heartbeat_calibration_warmup_seconds)]
    args += ["--window", str(config.heartbeat_calibration_window_seconds)]
    loadgen = await children.start("heartbeat-calibration", *args, drain=False)
    await loadgen.read_event("registered")
    unloaded = await loadgen.read_event("unloaded")
    steps: list[dict[str, Any]] = []
    while (event := json.loads(await loadgen.read_line(120.0)))["event"] == "step":
        steps.append({k: v for k, v in event.items() if k != "event"})
    if event["event"] != "calibrated" or unloaded["p50_ms"] is None:
        raise RuntimeError(f"the heartbeat calibration said {event} (idle beats: {unloaded})")
    await loadgen.read_event("done")
    await children.stop(loadgen)
    return _Calibration(event["rate"], unloaded["p50_ms"], steps)


async def _heartbeat_windows(children: Children, config: Config, target: Child, name: str, rate: float) -> _Windows:
    """Point a heartbeat load generator at `target` (`rate` beats per worker per second); its CPU share and
    the beats' latency per window."""
    args = ["-m", "bench.loadgen", "heartbeat", *_fleet_args(config, target), "--rate", str(rate)]
    args += ["--rounds", str(config.rounds)]
    args += ["--warmup", str(config.heartbeat_warmup_seconds), "--window", str(config.heartbeat_window_seconds)]
    loadgen = await children.start(name, *args, drain=False)
    seen = _Windows()
    seen.register_seconds = (await loadgen.read_event("registered"))["seconds"]
    for round_ in range(1, config.rounds + 1):
        await loadgen.read_event("window_start")
        began, cpu_before, gen_before = time.perf_counter(), cpu_seconds(target.pid), cpu_seconds(loadgen.pid)
        end = await loadgen.read_event("window_end")
        wall = time.perf_counter() - began
        seen.cpu_share.append((cpu_seconds(target.pid) - cpu_before) / wall)
        seen.loadgen_share.append((cpu_seconds(loadgen.pid) - gen_before) / wall)
        if end["p50_ms"] is None:
            raise RuntimeError(f"no heartbeat to {target.name} succeeded in window {round_}: {end}")
        seen.p50_ms.append(end["p50_ms"])
        seen.p99_ms.append(end["p99_ms"])
        seen.windows.append(
            {k: v for k, v in end.items() if k not in ("event", "p50_ms", "p99_ms")} | {"seconds": wall}
        )
    await loadgen.read_event("done")
    await children.stop(loadgen)
    return seen


async def measure_heartbeats(children: Children, config: Config) -> Results:
    """Heartbeat latency and registry CPU under `config.heartbeat_workers` workers at the calibrated rate.

    The same load then goes to the floor server (bare grpc.aio answering a constant response), which
    says how much of the registry's cost is gRPC's own, if it is sound (see the module's docstring).
    """
    # Both servers start together; the idle one costs nothing while the other is measured.
    registry, floor_server = await asyncio.gather(
        start_registry(children, "heartbeat-registry"),
        children.start("heartbeat-floor", "-m", "bench.floor", "--port", "0", ready_prefix=floor.READY_PREFIX),
    )
    calibration = await _calibrate(children, config, floor_server)
    seen = await _heartbeat_windows(children, config, registry, "heartbeat-loadgen", calibration.rate)
    results = Results()
    results.extras["registry_rss_mb_2k_workers"] = rss_mb(registry.pid)
    await children.stop(registry)
    bare = await _heartbeat_windows(children, config, floor_server, "heartbeat-floor-loadgen", calibration.rate)
    await children.stop(floor_server)
    floor_p50 = Figure(tuple(bare.p50_ms)).median
    if not loaded_latency_is_sound(floor_p50, calibration.unloaded_p50_ms):
        why = (
            f"p50 {floor_p50:.3g} ms under the load against {calibration.unloaded_p50_ms:.3g} ms for an idle beat: "
            "the load generator and the server saturate this machine"
        )
        results.unsound |= dict.fromkeys(
            ("floor_heartbeat_p50_ms", "floor_heartbeat_p99_ms", "floor_heartbeat_cpu_share"), why
        )
    results.extras["registry_heartbeat_rate_per_worker"] = calibration.rate
    results.extras["floor_heartbeat_unloaded_p50_ms"] = calibration.unloaded_p50_ms
    results.extras["floor_heartbeat_calibration"] = calibration.steps

    results.figures["registry_heartbeat_p50_ms"] = Figure(tuple(seen.p50_ms))
    results.figures["registry_heartbeat_p99_ms"] = Figure(tuple(seen.p99_ms))
    results.figures["registry_cpu_share"] = Figure(tuple(seen.cpu_share))
    results.figures["floor_heartbeat_p50_ms"] = Figure(tuple(bare.p50_ms))
    results.figures["floor_heartbeat_p99_ms"] = Figure(tuple(bare.p99_ms))
    results.figures["floor_heartbeat_cpu_share"] = Figure(tuple(bare.cpu_share))
    results.extras["registry_heartbeat_workers"] = config.heartbeat_workers
    results.extras["registry_heartbeat_beats_per_s"] = config.heartbeat_workers * calibration.rate
    results.extras["registry_heartbeat_connections"] = config.heartbeat_channels or config.heartbeat_workers
    results.extras["registry_cpu_us_per_heartbeat"] = seen.cpu_us_per_beat()
    results.extras["floor_cpu_us_per_heartbeat"] = bare.cpu_us_per_beat()
    results.extras["registry_heartbeat_errors"] = seen.errors()
    results.extras["floor_heartbeat_errors"] = bare.errors()
    results.extras["registry_register_seconds_2k"] = seen.register_seconds
    results.extras["registry_heartbeat_windows"] = seen.windows
    results.extras["floor_heartbeat_windows"] = bare.windows
    results.extras["loadgen_cpu_share"] = Figure(tuple(seen.loadgen_share)).median
    return results


async def measure_registration(children: Children, config: Config) -> Results:
    """Time to register `config.register_workers` workers and the registry's RSS then; fresh registry per round."""
    seconds: list[float] = []
    rss: list[float] = []
    idle_rss: list[float] = []
    errors: dict[str, int] = {}
    for round_ in range(1, config.rounds + 1):
        registry = await start_registry(children, f"register-registry-{round_}")
        idle_rss.append(rss_mb(registry.pid))
        args = ["-m", "bench.loadgen", "register", "--registry", registry.address]
        args += ["--workers", str(config.register_workers)]
        loadgen = await children.start(f"register-loadgen-{round_}", *args, drain=False)
        registered = await loadgen.read_event("registered")
        rss.append(rss_mb(registry.pid))
        seconds.append(registered["seconds"])
        for name, count in registered["errors"].items():
            errors[name] = errors.get(name, 0) + count
        await loadgen.read_event("done")
        await children.stop(loadgen)
        await children.stop(registry)
    results = Results()
    results.figures["registry_register_seconds_10k"] = Figure(tuple(seconds))
    results.figures["registry_rss_mb_10k_workers"] = Figure(tuple(rss))
    results.extras["registry_rss_mb_idle"] = Figure(tuple(idle_rss)).median
    results.extras["registry_register_workers"] = config.register_workers
    results.extras["registry_register_errors"] = errors
    return results
