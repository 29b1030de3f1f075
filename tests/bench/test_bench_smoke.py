"""The benchmark harness runs end to end with tiny counts; the figures themselves are not judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.config import TINY
from bench.suite import FIGURE_KEYS, REQUIRED_KEYS, ROUNDS_OF

REPO = Path(__file__).resolve().parents[2]


# Every scenario starts its own processes (scenario 7 four NATS set-ups and their daemons): about 60 s on a
# small machine (77 s while others' tests ran on its 2 cores), bounded here at about twice that.
@pytest.mark.timeout(180)
def test_tiny_run_prints_the_table_and_writes_every_required_key(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    command = [sys.executable, "bench/run.py", "--tiny", "--out", str(out), "--log-dir", str(tmp_path / "logs")]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=150, check=False)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "ratio to floor" in completed.stdout
    doc = json.loads(out.read_text())
    assert doc["failures"] == {}
    assert doc["mode"] == "tiny"
    assert set(REQUIRED_KEYS) <= doc.keys()
    for key in (*FIGURE_KEYS, "latency_ratio", "throughput_ratio"):
        assert isinstance(doc[key], int | float), key
    for key in FIGURE_KEYS:
        assert len(doc["figures"][key]["rounds"]) >= ROUNDS_OF.get(key, 3), key
    assert doc["machine"]["cpu_count"] >= 1
    # The registry's load was calibrated against the floor server, whose soundness is judged either way.
    assert doc["details"]["registry_heartbeat_rate_per_worker"] in TINY.heartbeat_rates
    assert isinstance(doc["unsound_floors"], dict)
    assert doc["details"]["daemon_store_probe"]["commits"] > 0
    assert "SQLite store alone on its disk" in completed.stdout
    # Each shared path's CPU is charged to every process, the nats-server's included, and the model is made.
    details = doc["details"]
    for prefix in ("cluster_", "cluster_2_", "cluster_r3_", "cluster_2_callers_"):
        assert {"caller", "daemon", "nats", "workers", "total"} <= details[f"{prefix}cpu_us_per_task_256"].keys()
    assert {"nats_1", "nats_2", "nats_3"} <= details["cluster_r3_cpu_us_per_task_256"].keys()
    assert {"daemon_1", "daemon_2"} <= details["cluster_2_cpu_us_per_task_256"].keys()
    assert {"caller_1", "caller_2", "daemon_1", "daemon_2"} <= details["cluster_2_callers_cpu_us_per_task_256"].keys()
    for ratio in ("cluster_latency_ratio_to_sqlite", "cluster_throughput_ratio_to_sqlite",
                  "cluster_daemon_cpu_ratio_to_sqlite", "cluster_2_callers_throughput_ratio_to_one"):  # fmt: skip
        assert isinstance(doc[ratio], float), ratio
    assert set(details["cluster_model"]["cluster_"]["throughput"]) == {"1", "2", "4", "8"}
    # One NATS home (the partitioned one) under the plain cluster prefixes: no variant of another home is left.
    assert not [key for key in (*doc, *details) if key.startswith("cluster_partitioned")]
    assert "(7p)" not in completed.stdout and "(7pc)" not in completed.stdout
    assert "CPU per task at 256 in flight" in completed.stdout
    assert "model from (7)'s CPU per task" in completed.stdout
    # Workflows (8) are held to single tasks through the same daemon, on SQLite and on NATS, and the store's
    # bytes are given per step at each size.
    for prefix in ("workflow_", "workflow_nats_"):
        for ratio in ("chain_step_ratio", "map_throughput_ratio"):
            assert isinstance(doc[prefix + ratio], float), prefix + ratio
        assert set(details[prefix + "store_growth"]) == {"chain", "map"}
    assert "(8) stored bytes per step, chains of 10 → " in completed.stdout
    assert "(8n) stored bytes per step, maps of 100 → " in completed.stdout
    # Time and flow control (9): every delayed task ran, a sweep ran beside sequential tasks, and the store's
    # size was read after each steady round.
    timing = details["time_flow"]
    assert timing["delayed"]["finished"] == TINY.delayed_tasks
    assert isinstance(doc["retention_sweep_latency_ratio"], float)
    assert len(timing["steady"]["rounds"]) == TINY.retention_steady_rounds
    assert "(9a) daemon CPU from its threads' run time" in completed.stdout
    # Streaming and input (10): chunks held to a bare server stream beside each round, the daemon's RSS with each
    # kind of reader against the same moment with none, and resumption after an answer against no-op tasks.
    for ratio in ("stream_chunk_ratio", "input_resume_ratio", "stream_rss_ratio_slow_readers",
                  "stream_rss_ratio_slow_watchers", "stream_rss_ratio_live_readers"):  # fmt: skip
        assert isinstance(doc[ratio], float), ratio
    slow = details["stream_slow"]
    assert set(slow["daemons"]) == {"slow_watchers", "live_readers", "slow_readers"}  # a daemon each
    assert slow["daemons"]["slow_readers"]["with_readers"]["readers"] == TINY.slow_readers
    assert slow["chunks_per_task"] == 2 * TINY.slow_read_chunks + TINY.slow_rest_chunks
    assert details["stream_errors"] == {}
    assert "(10b) daemon RSS growth while a task streamed" in completed.stdout
