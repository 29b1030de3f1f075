"""Scenario 8's arithmetic: the store's bytes of a workflow, how they grow with its steps, and how they print."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report, store_bytes
from bench.workflow_caller import chain, map_steps, mapped
from worker_abstraction.stores import sqlite_schema

pytestmark = pytest.mark.timeout(10)


def test_a_line_through_points_on_it_has_their_slope_and_intercept_and_no_deviation() -> None:
    line = store_bytes.growth([(10, 1_100), (50, 5_100), (100, 10_100)])

    assert line.per_step == pytest.approx(100.0)
    assert line.per_workflow == pytest.approx(100.0)
    assert line.worst_deviation == pytest.approx(0.0)


def test_the_farthest_point_from_the_line_is_measured_against_its_own_bytes() -> None:
    line = store_bytes.growth([(0, 100), (1, 300), (2, 300)])  # least squares: y = 133.3 + 100 x

    assert line.per_step == pytest.approx(100.0)
    assert line.worst_deviation == pytest.approx(33.33 / 100, rel=1e-3)  # (0, 100) lies 33.3 below the line


def test_two_points_give_a_line_but_no_deviation_and_one_size_gives_none() -> None:
    assert store_bytes.growth([(100, 50_000), (1_000, 495_000)]).worst_deviation is None
    with pytest.raises(ValueError):
        store_bytes.growth([(10, 1_000), (10, 1_100)])


def test_what_each_stream_gained_leaves_out_the_unchanged_and_counts_a_new_one_whole() -> None:
    gained = store_bytes.difference(
        {"KV_a": 100, "UPDATES": 50, "same": 7}, {"KV_a": 350, "UPDATES": 80, "same": 7, "new": 9}
    )

    assert gained == {"KV_a": 250, "UPDATES": 30, "new": 9}


def test_a_workflows_rows_are_its_own_and_its_steps_not_those_of_an_id_it_prefixes(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    db = sqlite_schema.connect(str(path))
    sqlite_schema.prepare(db, log_kept_bytes=1 << 20)
    insert = "INSERT INTO tasks (task_id, task, options, state, updated_at) VALUES (?, ?, '', ?, 0)"
    db.executemany(
        insert,
        [("wf", b"x" * 40, "finished"), ("wf.a", b"y" * 30, "finished"), ("wf.b.0", b"z" * 20, "dispatched"),
         ("wf2", b"w" * 1000, "finished"), ("wf_a", b"w" * 1000, "finished")],
    )  # fmt: skip
    db.close()

    rows = store_bytes.sqlite_rows(path, "wf")

    assert (rows.rows, rows.finished) == (3, 2)
    # Each row: its id, its task, its state, and the columns every row has (numbers counted as text).
    assert rows.bytes > 40 + 30 + 20 + len("wf" + "wf.a" + "wf.b.0")
    assert rows.bytes < 1000
    assert store_bytes.sqlite_pages_in_use(path) > 2000  # the five rows, their two thousand bytes among them


def test_the_benchmarks_workflows_have_the_shapes_they_are_named_for() -> None:
    made = chain(10)
    assert [step.parents for step in made.steps] == [(), *((f"s{i}",) for i in range(9))]
    fanned = mapped(2_000, 256)
    assert [step.name for step in fanned.steps] == ["list", "each"]
    assert fanned.steps[1].map is not None and fanned.steps[1].map.concurrency == 256
    assert map_steps(2_000) == 2_001


def test_the_growth_lines_give_bytes_per_step_at_each_size_and_the_line() -> None:
    growth = {
        "chain": {"per_step": 594.0, "per_workflow": 162.0, "worst_deviation": 0.021,
                  "bytes_per_step": {"10": 623.0, "50": 592.0, "100": 596.0}},
        "map": {"per_step": 495.0, "per_workflow": -167.0, "worst_deviation": None,
                "bytes_per_step": {"100": 493.0, "1000": 495.0}},
    }  # fmt: skip

    lines = report.growth_lines({"details": {"workflow_store_growth": growth}})

    assert lines == [
        "(8) stored bytes per step, chains of 10 → 623, 50 → 592, 100 → 596; line: 594 per step + 162 per workflow,"
        " the farthest size 2.1 % off it",
        "(8) stored bytes per step, maps of 100 → 493, 1,000 → 495; line: 495 per step - 167 per workflow",
    ]
