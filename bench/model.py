"""What N daemons sharing one NATS server would reach, each on a core of its own, from the CPU per task that
each process used in a run (scenario 7; see "Scaling the shared path: the model" in bench/README.md).

A daemon that spends `daemon_us` of CPU per task can run at most 1e6 / daemon_us tasks a second on its core;
N of them, N times that, as long as the one nats-server they share keeps up: it spends `nats_us` per task, so
it saturates its core at 1e6 / nats_us tasks a second. So

    throughput(N) = min(N * 1e6 / daemon_us, 1e6 / nats_us)

The callers and the workers are left out: in such a deployment they are on machines of their own. So are the
network between machines, a replicated stream's cost (R3) and the registry; see the README.
"""

from __future__ import annotations

from typing import Any

DAEMON_COUNTS = (1, 2, 4, 8)
# Where the per-task CPU is taken from: one daemon on one server, and two daemons each fed by its own caller.
SOURCES = {"cluster_": "7", "cluster_2_callers_": "7c"}


def predict(cpu_us_per_task: dict[str, float], cores: int, measured: float | None = None) -> dict[str, Any] | None:
    """The model's figures from one variant's `details.{prefix}cpu_us_per_task_256` (None without its daemon
    and nats-server entries). `cores` is this machine's, for the ceiling every process shared here, and
    `measured` the variant's throughput at 256 in flight here (tasks/s), to say how busy the cores were."""
    daemon_us, nats_us, total_us = (cpu_us_per_task.get(kind) for kind in ("daemon", "nats", "total"))
    if not daemon_us or nats_us is None or not total_us:
        return None
    per_daemon = 1e6 / daemon_us
    # (A nats-server whose CPU was below /proc's resolution over the rounds, as in a tiny run: no ceiling seen.)
    nats_ceiling = 1e6 / nats_us if nats_us else None
    return {
        "daemon_cpu_us_per_task": daemon_us,
        "nats_cpu_us_per_task": nats_us,
        "per_daemon_core": per_daemon,  # tasks/s one daemon can run on one core
        "nats_ceiling": nats_ceiling,  # tasks/s at which the nats-server fills one core
        "nats_saturates_at_daemons": None if nats_ceiling is None else nats_ceiling / per_daemon,
        "throughput": {
            str(n): n * per_daemon if nats_ceiling is None else min(n * per_daemon, nats_ceiling) for n in DAEMON_COUNTS
        },
        # Here every process (callers and workers too) shared the machine's cores: at most this many tasks/s.
        "machine_cores": cores,
        "machine_total_cpu_us_per_task": total_us,
        "machine_ceiling": cores * 1e6 / total_us,
        "measured_throughput_256": measured,
        # Cores the watched processes kept busy at that throughput (the rest: waits, and other processes).
        "busy_cores": None if measured is None else measured * total_us / 1e6,
    }


def models(medians: dict[str, Any], details: dict[str, Any], cores: int) -> dict[str, dict[str, Any]]:
    """The model from each source variant that ran (keyed by its prefix), from the run's medians and details."""
    found = {}
    for prefix in SOURCES:
        cpu = details.get(f"{prefix}cpu_us_per_task_256") or {}
        made = predict(cpu, cores, medians.get(f"{prefix}throughput_256"))
        if made is not None:
            found[prefix] = made
    return found
