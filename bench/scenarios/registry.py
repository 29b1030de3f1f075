"""Scenario 4: the registry (`wa registry` process) under simulated workers from a load-generator process.

- heartbeats: 2,000 workers beating once a second; per ~10 s window, heartbeat p50/p99 as the load
  generator saw them and the registry's CPU share (utime+stime from /proc over the window's wall time);
- registration: 10,000 workers registered into a fresh registry; the time it took and the registry's
  RSS afterwards (one fresh registry per round).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bench import floor
from bench.config import Config
from bench.measure import Figure, Results
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


async def _heartbeat_windows(
    children: Children, config: Config, target: Child, name: str, *, stream: bool = False
) -> _Windows:
    """Point a heartbeat load generator at `target`; its CPU share and the beats' latency per window.

    `stream` sends the beats as our workers do (HeartbeatStream); the bare floor server answers unary only.
    """
    args = ["-m", "bench.loadgen", "heartbeat", "--registry", target.address, *(["--stream"] if stream else [])]
    args += ["--workers", str(config.heartbeat_workers), "--channels", str(config.heartbeat_channels)]
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
    """Heartbeat latency and registry CPU under `config.heartbeat_workers` workers at 1 beat/s each.

    The same load then goes to the floor server (bare grpc.aio answering a constant response), which
    says how much of the registry's cost is gRPC's own.
    """
    # Both servers start together; the idle one costs nothing while the other is measured.
    registry, floor_server = await asyncio.gather(
        start_registry(children, "heartbeat-registry"),
        children.start("heartbeat-floor", "-m", "bench.floor", "--port", "0", ready_prefix=floor.READY_PREFIX),
    )
    seen = await _heartbeat_windows(children, config, registry, "heartbeat-loadgen", stream=True)
    results = Results()
    results.extras["registry_rss_mb_2k_workers"] = rss_mb(registry.pid)
    await children.stop(registry)
    bare = await _heartbeat_windows(children, config, floor_server, "heartbeat-floor-loadgen")
    await children.stop(floor_server)

    results.figures["registry_heartbeat_p50_ms"] = Figure(tuple(seen.p50_ms))
    results.figures["registry_heartbeat_p99_ms"] = Figure(tuple(seen.p99_ms))
    results.figures["registry_cpu_share"] = Figure(tuple(seen.cpu_share))
    results.figures["floor_heartbeat_p50_ms"] = Figure(tuple(bare.p50_ms))
    results.figures["floor_heartbeat_p99_ms"] = Figure(tuple(bare.p99_ms))
    results.figures["floor_heartbeat_cpu_share"] = Figure(tuple(bare.cpu_share))
    results.extras["registry_heartbeat_workers"] = config.heartbeat_workers
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
