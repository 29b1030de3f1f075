"""Fixtures of the fuzz harness: one cluster of real `wa` processes per module, and every finding collected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzz.cluster import Cluster
from tests.fuzz.harness import Harness
from tests.fuzz.oracle import Findings

FINDINGS = Findings()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("fuzz-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def harness(cluster: Cluster) -> Iterator[Harness]:
    harness = Harness(cluster, FINDINGS)
    harness.known.worker_id = cluster.procs["worker"].worker_id
    yield harness
    harness.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FINDINGS.items:
        terminalreporter.section(f"fuzz findings ({len(FINDINGS.items)} distinct, {FINDINGS.cases:,} cases)")
        terminalreporter.write_line(FINDINGS.report())
        report = Path(__file__).parent / ".findings.txt"
        report.write_text(FINDINGS.report() + "\n")
