"""Scenario 9's arithmetic: lateness of delayed tasks, samples inside a sweep, CPU shares, the store's size."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench import report, time_figures
from bench.config import FULL, QUICK, TINY
from bench.scenarios import time_flow
from bench.suite import FIGURE_KEYS, SINGLE_ROUND_KEYS

pytestmark = pytest.mark.timeout(10)


def test_lateness_is_the_start_less_the_not_before_and_an_early_start_is_negative() -> None:
    due = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

    assert time_figures.lateness_ms(due, due + timedelta(milliseconds=12.5)) == pytest.approx(12.5)
    assert time_figures.lateness_ms(due, due - timedelta(microseconds=400)) == pytest.approx(-0.4)


def test_a_rounds_lateness_gives_its_percentiles_extremes_and_early_count() -> None:
    samples = [float(n) for n in range(1, 101)]  # 1..100 ms
    samples[0] = -0.5

    found = time_figures.lateness(samples)

    assert found.count == 100
    assert found.p50_ms == pytest.approx(50.5)
    assert found.p99_ms == pytest.approx(99.01)
    assert (found.max_ms, found.min_ms, found.early) == (100.0, -0.5, 1)
    with pytest.raises(ValueError):
        time_figures.lateness([])


def test_samples_count_before_a_sweep_if_they_ended_before_it_and_during_if_any_part_was_inside() -> None:
    samples = [(0.0, 1.0), (1.2, 0.8), (1.5, 0.6), (2.6, 0.3), (4.8, 0.4), (5.0, 0.1), (5.5, 0.1)]

    split = time_figures.split_by_span(samples, began=2.0, ended=5.0)

    assert split.before == [1.0, 0.8]  # (1.2, 0.8) ends as the sweep begins
    assert split.during == [0.6, 0.3, 0.4]  # across its start, inside, across its end; then after it


def test_a_cpu_share_is_seconds_per_second_and_a_window_needs_time() -> None:
    assert time_figures.cpu_share(0.02, 10.0) == pytest.approx(0.002)
    with pytest.raises(ValueError):
        time_figures.cpu_share(0.0, 0.0)


def test_growth_is_the_last_rounds_size_less_the_firsts() -> None:
    assert time_figures.growth_after_first([2.9, 2.9, 2.95, 2.95, 2.95]) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        time_figures.growth_after_first([2.9])


def test_a_stores_size_counts_its_pages_its_free_ones_and_its_two_files(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("CREATE TABLE t (x BLOB)")
        db.executemany("INSERT INTO t VALUES (?)", [(b"x" * 3000,) for _ in range(100)])
        db.execute("DELETE FROM t")
        size = time_figures.store_size(path)
        page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()

    assert size.database_bytes >= 100 * 3000  # the rows' pages, in the log and not yet in the file
    assert size.free_bytes >= 100 * page  # what the deletion freed is on the free list
    assert size.file_bytes < size.database_bytes  # (the log was never folded in)
    assert size.log_bytes > 100 * 3000


def test_every_figure_of_scenario_9_is_a_figure_of_the_suite_and_all_but_the_firings_measured_once() -> None:
    assert set(time_flow.FIGURE_KEYS) <= set(FIGURE_KEYS)
    assert set(time_flow.FIGURE_KEYS) - set(SINGLE_ROUND_KEYS) == set(time_flow.LATENESS_KEYS)
    # Every mode has as many steady rounds, so that each one's key is in every document.
    assert FULL.retention_steady_rounds == QUICK.retention_steady_rounds == TINY.retention_steady_rounds
    # The delayed tasks' window ends before they can be due, with room to submit them.
    for config in (FULL, QUICK):
        assert config.delayed_window_seconds + 1.0 < config.delayed_seconds / 2


def test_the_time_lines_give_the_cpu_to_the_nanosecond_the_sweeps_pace_and_the_files() -> None:
    details = {
        "delayed": {"tasks": 10_000, "seconds": 2.4, "finished": 10_000,
                    "idle_cpu_share_schedstat": 0.000123, "waiting_cpu_share_schedstat": 0.000141},
        "firing": {"early": 3, "all_rounds_p99_ms": 1.41, "rounds": [
            {"tasks": 200, "min_ms": -0.96}, {"tasks": 200, "min_ms": -1.15}, {"tasks": 200, "min_ms": 0.2}]},
        "sweep": {"filled": {"tasks": 100_000, "seconds": 25.5, "store": {"database_bytes": 60 * 2**20}},
                  "swept_per_s": 77_929.2, "tasks_before": 500, "tasks_during": 304, "max_during_us": 28_650.0,
                  "slowest_began_after_sweep_seconds": 0.114},
        "steady": {"tasks_per_round": 5_000, "rounds": [
            {"file_bytes": 3 * 2**20, "log_bytes": 16 * 2**20}, {"file_bytes": 3 * 2**20, "log_bytes": 16 * 2**20}]},
    }  # fmt: skip

    lines = report.time_lines({"details": {"time_flow": details}})

    assert lines == [
        "(9a) daemon CPU from its threads' run time (schedstat): idle 0.00012, with 10,000 delayed tasks waiting"
        " 0.00014 of a core; they were submitted in 2.4 s, 10,000 ran to their end",
        "(9b) 3 of 600 delayed tasks started before their not_before (at most 1.15 ms before); p99 of every"
        " round's tasks together 1.41 ms",
        "(9c) store filled with 100,000 tasks through the daemon in 25.5 s (60.0 MiB); the sweep dropped 77,929"
        " tasks/s; 500 tasks measured before it, 304 during it (the slowest 28.6 ms, begun 0.11 s after the sweep"
        " began)",
        "(9d) 5,000 tasks a round; the file and its log on disk after each round, MiB: 3.0 + 16.0, 3.0 + 16.0",
    ]
