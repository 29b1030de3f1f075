"""The CPU charged to each kind of process, and the model of N daemons built from it (arithmetic only)."""

from __future__ import annotations

import pytest

from bench import model, report
from bench.procs import process_kind, with_kind_totals


def test_numbered_processes_are_summed_under_their_kind_and_everything_under_total() -> None:
    per_process = {"caller": 100.0, "daemon_1": 1000.0, "daemon_2": 800.0, "nats_1": 300.0, "nats_2": 200.0}
    per_process |= {"worker_0": 50.0, "worker_1": 60.0}

    totals = with_kind_totals(per_process)

    assert totals["daemon"] == 1800.0 and totals["nats"] == 500.0 and totals["workers"] == 110.0
    assert totals["caller"] == 100.0 and totals["total"] == 2510.0
    assert totals["daemon_1"] == 1000.0
    assert [process_kind(name) for name in ("daemon", "caller_2", "worker_0", "nats")] == [
        "daemon",
        "caller",
        "workers",
        "nats",
    ]


def test_the_model_adds_daemons_until_the_nats_server_fills_its_core() -> None:
    made = model.predict({"daemon": 2000.0, "nats": 800.0, "total": 4000.0}, cores=2, measured=300.0)

    assert made is not None
    assert made["throughput"] == {"1": 500.0, "2": 1000.0, "4": 1250.0, "8": 1250.0}
    assert made["nats_saturates_at_daemons"] == pytest.approx(2.5)
    assert made["machine_ceiling"] == 500.0
    assert made["busy_cores"] == pytest.approx(1.2)


def test_no_model_without_a_nats_server_entry() -> None:
    assert model.predict({"daemon": 200.0, "total": 400.0}, cores=2) is None


def test_the_table_prints_each_paths_cpu_by_kind_and_the_model() -> None:
    cpu = with_kind_totals({"caller": 400.0, "daemon": 2000.0, "nats": 800.0, "worker_0": 300.0, "worker_1": 300.0})
    details = {"cluster_cpu_us_per_task_256": cpu}
    doc = {"details": details | {"cluster_model": model.models({"cluster_throughput_256": 300.0}, details, 2)}}

    lines = report.cpu_lines(doc) + report.model_lines(doc)

    assert lines[1] == "  (7) daemon 2,000, nats-server 800, caller 400, workers 600 (300 + 300): 3,800 in all"
    assert lines[2].startswith("model from (7)'s CPU per task (daemon 2,000 µs, nats-server 800 µs)")
    assert "1 → 500, 2 → 1,000, 4 → 1,250, 8 → 1,250 tasks/s" in lines[2]
    assert "measured 300, which kept 1.14 of 2 cores busy" in lines[3]


def test_a_nats_server_below_the_cpu_resolution_sets_no_ceiling() -> None:
    made = model.predict({"daemon": 2000.0, "nats": 0.0, "total": 4000.0}, cores=2)
    assert made is not None and made["nats_ceiling"] is None and made["nats_saturates_at_daemons"] is None
    assert made["throughput"]["2"] == pytest.approx(1000.0)
