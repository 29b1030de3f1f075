"""How much each scenario runs in `--quick` and full mode; both produce the same figures and JSON keys."""

from __future__ import annotations

from dataclasses import dataclass, replace

# A deployed path's latency round alternates with the floor's beside it in this many blocks (each side's block
# in turn, the floor's first), so that both p50s come from the same seconds of the machine: rounds of half a
# second each, one after the other, gave floors 20-30 % apart within minutes (453-631 us): the durable daemon
# came out at 3.8x and the in-memory one at 2.6x, where their own p50s differed by 15 %.
LATENCY_BLOCKS = 10


@dataclass(frozen=True)
class Config:
    mode: str
    rounds: int = 3
    # The floor: bare grpc.aio between two processes.
    floor_latency_warmup: int = 1_000
    floor_latency_count: int = 3_000
    floor_throughput_warmup: int = 2_000
    floor_throughput_count: int = 20_000
    floor_seed_latency_count: int = 2_000
    floor_seed_throughput_count: int = 10_000
    # Tasks through AsyncOrchestrator -> 2 worker processes.
    task_latency_warmup: int = 500
    task_latency_count: int = 2_000
    task_throughput_warmup: int = 2_000
    task_throughput_count: int = 20_000
    sleep_throughput_count: int = 20_000
    sleep_in_flight: int = 1_000
    sleep_ms: int = 10
    sync_latency_count: int = 1_000
    # The registry under simulated workers.
    heartbeat_workers: int = 2_000
    # Connections the simulated workers share; 0: one each, as real workers have.
    heartbeat_channels: int = 0
    heartbeat_warmup_seconds: float = 3.0
    heartbeat_window_seconds: float = 10.0
    # Beats per worker per second to try against the floor server, highest first; the first whose floor is
    # sound is the load (see bench/scenarios/registry.py), the last if none is.
    heartbeat_rates: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    heartbeat_calibration_warmup_seconds: float = 1.0
    heartbeat_calibration_window_seconds: float = 3.0
    register_workers: int = 10_000
    # Scenario 5: tasks waiting in one orchestrator's queue.
    queued_tasks: int = 100_000
    # Scenario 6: the daemon, through RemoteOrchestrator.
    daemon_latency_warmup: int = 300
    daemon_latency_count: int = 1_000
    daemon_throughput_warmup: int = 1_000
    daemon_throughput_count: int = 10_000
    daemon_burst: int = 10_000
    daemon_queued_tasks: int = 100_000
    # The SQLite store alone on the daemon's disk (bench/storeprobe.py): tasks one after another.
    store_probe_tasks: int = 5_000
    # Scenario 8: workflows through a daemon, on SQLite and on NATS (bench/workflow_caller.py).
    workflow_task_warmup: int = 200
    workflow_chain_warmup: int = 5
    workflow_chain_steps: int = 10
    workflow_chains: int = 20  # a round's chains, each followed by `workflow_tasks_per_chain` single tasks
    workflow_tasks_per_chain: int = 10
    workflow_throughput_warmup: int = 1_000
    workflow_throughput_count: int = 10_000
    workflow_map_elements: int = 10_000
    workflow_map_concurrency: int = 256
    # The store's bytes: a chain of each of these steps, a map of each of these elements, one at a time (the
    # same in every mode: each figure's key names its size).
    workflow_bytes_chains: tuple[int, ...] = (10, 50, 100)
    workflow_bytes_maps: tuple[int, ...] = (100, 1_000)
    # How long after a workflow's end its NATS streams are read: a finished task's live key leaves a marker
    # that expires 10 s after it was written (PartitionedStoreOptions.moved_marker_seconds).
    workflow_nats_settle_seconds: float = 12.0
    # Scenario 9: time and flow control through a daemon on SQLite (bench/time_caller.py).
    delayed_tasks: int = 10_000  # submitted with a delay, then waiting in the daemon
    delayed_seconds: float = 30.0  # their delay
    delayed_window_seconds: float = 10.0  # the daemon's CPU is read over this long, idle and with them waiting
    firing_tasks: int = 200  # a round's delayed tasks whose start is compared with their not_before
    firing_lead_seconds: float = 1.5  # the first one's not_before, from when the round begins
    firing_spread_seconds: float = 3.0  # the rest spread evenly over this long after it
    retention_filled_tasks: int = 100_000  # finished tasks in the store a sweep then drops
    retention_baseline_tasks: int = 1_000  # sequential tasks measured before the sweep starts
    retention_steady_tasks: int = 5_000  # a round of the steady load, with a sweep after each
    retention_steady_rounds: int = 5  # (the same in every mode: each round's figure is named by its number)
    # Scenario 10: streamed output and input requests through a daemon (bench/stream_caller.py).
    stream_chunks: int = 10_000  # (10a) chunks one handler streams in a round, and the floor's messages
    stream_chunk_bytes: int = 100
    stream_warmup_chunks: int = 1_000  # one stream of this many before the rounds (and before the floor's)
    slow_readers: int = 100  # (10b) readers that read a few chunks of a streaming task, then stall
    slow_read_chunks: int = 5  # the few each reads
    slow_rest_chunks: int = 10_000  # what the task streams once they stall
    input_warmup: int = 50  # (10c) tasks that ask for input, and no-op tasks, before the rounds
    input_count: int = 500  # a round's tasks that ask for input, and as many no-op tasks between them


FULL = Config(mode="full")

QUICK = Config(
    mode="quick",
    floor_latency_warmup=300,
    floor_latency_count=1_000,
    floor_throughput_warmup=500,
    floor_throughput_count=4_000,
    floor_seed_latency_count=500,
    floor_seed_throughput_count=2_000,
    task_latency_warmup=200,
    task_latency_count=500,
    task_throughput_warmup=500,
    task_throughput_count=4_000,
    sleep_throughput_count=4_000,
    sync_latency_count=300,
    heartbeat_warmup_seconds=2.0,
    heartbeat_window_seconds=3.0,
    heartbeat_calibration_window_seconds=2.0,
    register_workers=10_000,
    daemon_latency_warmup=100,
    daemon_latency_count=300,
    daemon_throughput_warmup=300,
    daemon_throughput_count=2_000,
    daemon_burst=2_000,
    store_probe_tasks=3_000,
    workflow_task_warmup=100,
    workflow_chain_warmup=3,
    workflow_chains=10,
    workflow_throughput_warmup=500,
    workflow_throughput_count=3_000,
    workflow_map_elements=2_000,
    delayed_seconds=15.0,
    delayed_window_seconds=5.0,
    retention_baseline_tasks=500,
    input_warmup=20,
    input_count=200,
)

# The daemons sharing tasks on NATS (scenario 7) take several NATS round trips per task: fewer tasks per round.
CLUSTER = Config(
    mode="cluster",
    daemon_latency_warmup=50,
    daemon_latency_count=300,
    daemon_throughput_warmup=200,
    daemon_throughput_count=1_500,
    daemon_burst=500,
)

# For the smoke test: proves the harness end to end in seconds; the figures mean nothing.
TINY = Config(
    mode="tiny",
    floor_latency_warmup=5,
    floor_latency_count=20,
    floor_throughput_warmup=10,
    floor_throughput_count=100,
    floor_seed_latency_count=20,
    floor_seed_throughput_count=100,
    task_latency_warmup=5,
    task_latency_count=20,
    task_throughput_warmup=10,
    task_throughput_count=100,
    sleep_throughput_count=200,
    sleep_in_flight=100,
    sync_latency_count=10,
    heartbeat_workers=50,
    heartbeat_warmup_seconds=0.2,
    heartbeat_window_seconds=0.3,
    heartbeat_calibration_warmup_seconds=0.2,
    heartbeat_calibration_window_seconds=0.3,
    register_workers=200,
    queued_tasks=200,
    daemon_latency_warmup=5,
    daemon_latency_count=20,
    daemon_throughput_warmup=10,
    daemon_throughput_count=100,
    daemon_burst=50,
    daemon_queued_tasks=200,
    store_probe_tasks=50,
    workflow_task_warmup=5,
    workflow_chain_warmup=1,
    workflow_chains=2,
    workflow_tasks_per_chain=3,
    workflow_throughput_warmup=10,
    workflow_throughput_count=100,
    workflow_map_elements=50,
    workflow_nats_settle_seconds=0.0,
    delayed_tasks=100,
    delayed_seconds=3.0,
    delayed_window_seconds=0.5,
    firing_tasks=20,
    firing_lead_seconds=0.5,
    firing_spread_seconds=0.3,
    retention_filled_tasks=1_000,
    retention_baseline_tasks=20,
    retention_steady_tasks=50,
    stream_chunks=300,
    stream_warmup_chunks=50,
    slow_readers=10,
    slow_rest_chunks=300,
    input_warmup=3,
    input_count=20,
)

# Scenario 7's two daemons on one NATS server, each fed by a caller of its own, both at once (`cluster_2_callers_`):
# the throughput rounds alone, 2 rounds of 2,000 tasks per caller (4,000 a round in all), to keep it short.
CLUSTER_CALLERS = Config(mode="cluster_callers", rounds=2, daemon_throughput_warmup=200, daemon_throughput_count=2_000)
TINY_CLUSTER_CALLERS = replace(TINY, mode="tiny_cluster_callers", rounds=2)

# By mode name, for the programs the bench starts (`bench/caller.py`).
CONFIGS = {config.mode: config for config in (FULL, QUICK, TINY, CLUSTER, CLUSTER_CALLERS, TINY_CLUSTER_CALLERS)}
