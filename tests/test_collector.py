"""The garbage collector's settings for long-running processes: what `collector.tune()` does, in a fresh
interpreter each time (it changes process-wide state), and that the `wa` daemons refuse a bad setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_PROBE = """
import gc, json
from worker_abstraction import collector
garbage = []
garbage.append(garbage)  # a cycle left from start-up
del garbage
collector.tune()
print(json.dumps({"young": gc.get_threshold()[0], "frozen": gc.get_freeze_count(), "left": gc.collect()}))
"""


def _probe(**env: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, int] = json.loads(done.stdout)
    return found


def test_tune_freezes_what_start_up_made_and_raises_the_young_threshold() -> None:
    found = _probe()
    assert found["young"] == 20_000
    assert found["frozen"] > 10_000  # the modules loaded so far
    assert found["left"] == 0  # the start-up cycle was collected before the freeze, not frozen


def test_the_threshold_is_set_by_wa_gc_threshold_and_zero_leaves_python_alone() -> None:
    assert _probe(WA_GC_THRESHOLD="5000")["young"] == 5000
    untouched = _probe(WA_GC_THRESHOLD="0")
    default = subprocess.run(
        [sys.executable, "-c", "import gc; print(gc.get_threshold()[0])"], capture_output=True, text=True, timeout=60
    )
    assert untouched["young"] == int(default.stdout) and untouched["frozen"] == 0


@pytest.mark.parametrize("command", ["registry", "orchestrator", "worker"])
def test_a_daemon_with_an_unusable_wa_gc_threshold_exits_2_saying_what_to_set(command: str) -> None:
    args = {"worker": ["bench.workers:NoopWorker"], "orchestrator": ["--store", ":memory:"], "registry": []}[command]
    done = subprocess.run(
        [sys.executable, "-m", "worker_abstraction.cli", command, *args, "--port", "0"],
        env={**os.environ, "WA_GC_THRESHOLD": "lots"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "WA_GC_THRESHOLD must be a whole number >= 0" in done.stderr and "'lots'" in done.stderr
