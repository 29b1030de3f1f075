"""A floor that measured a saturated machine is reported as such, and no ratio is taken to it."""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.config import TINY
from bench.measure import Figure, Results, loaded_latency_is_sound
from bench.suite import document


def _heartbeat_results(floor_p50_ms: float, *, unsound: bool) -> Results:
    results = Results()
    results.figures["registry_heartbeat_p99_ms"] = Figure((4.0, 5.0, 6.0))
    results.figures["registry_cpu_share"] = Figure((0.3, 0.3, 0.3))
    results.figures["floor_heartbeat_p50_ms"] = Figure((floor_p50_ms,) * 3)
    results.figures["floor_heartbeat_p99_ms"] = Figure((2.0, 2.0, 2.0))
    results.figures["floor_heartbeat_cpu_share"] = Figure((0.6, 0.6, 0.6))
    results.extras |= {"registry_heartbeat_workers": 2000, "registry_heartbeat_rate_per_worker": 0.5}
    if unsound:
        results.unsound = dict.fromkeys(
            ("floor_heartbeat_p50_ms", "floor_heartbeat_p99_ms", "floor_heartbeat_cpu_share"), "saturated"
        )
    return results


def test_ratios_to_an_unsound_floor_are_left_out_and_the_table_says_why(tmp_path: Path) -> None:
    doc = document(TINY, _heartbeat_results(970.0, unsound=True), {}, 1.0, tmp_path)

    assert doc["registry_heartbeat_p99_ratio"] is None
    assert doc["registry_cpu_ratio"] is None
    assert set(doc["ratios_to_unsound_floors"]) == {"registry_heartbeat_p99_ratio", "registry_cpu_ratio"}
    assert set(doc["unsound_floors"]) == {
        "floor_heartbeat_p50_ms",
        "floor_heartbeat_p99_ms",
        "floor_heartbeat_cpu_share",
    }
    table = report.table(doc)
    assert table.count("n/a: floor unsound") == 2
    assert table.count("UNSOUND FLOOR (see below)") == 3
    assert "UNSOUND FLOOR floor_heartbeat_p50_ms, floor_heartbeat_p99_ms, floor_heartbeat_cpu_share: saturated" in table
    assert "heartbeat p50, 2,000 workers @ 0.5/s" in table


def test_ratios_to_a_sound_floor_are_taken(tmp_path: Path) -> None:
    doc = document(TINY, _heartbeat_results(1.2, unsound=False), {}, 1.0, tmp_path)

    assert doc["registry_heartbeat_p99_ratio"] == 2.5
    assert doc["unsound_floors"] == {} and doc["ratios_to_unsound_floors"] == []
    assert "UNSOUND" not in report.table(doc)


def test_a_loaded_latency_is_sound_near_an_idle_calls_and_not_far_above_it() -> None:
    assert loaded_latency_is_sound(1.3, 0.2)
    assert not loaded_latency_is_sound(970.0, 0.3)
    assert not loaded_latency_is_sound(5.0, 0.2)
