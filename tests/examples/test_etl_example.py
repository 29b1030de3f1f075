"""examples/etl/README.md's commands, run line by line exactly as written, as a user pastes them into a shell
in the repository root: what each prints is what the README says it prints.

The block marked `<!-- example test: etl ... -->` runs (by `readme_block`) in a fresh directory that holds
`examples` (a link to the repository's), with the venv's `wa` on PATH and its servers on free ports. A line
ending in `&` is a server, waited for until it prints its readiness line; any other line must exit 0, or 1
when its comment says "exits 1".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from examples.etl.workers import EtlWorker
from tests.e2e.processes import REPO
from tests.examples.readme_block import block, run_block

pytestmark = pytest.mark.timeout(120)

README = REPO / "examples" / "etl" / "README.md"
REPORT = "Orders: 10 orders, 1,032.62 EUR (FR 375.50, DE 238.15, US 231.93, JP 96.38, GB 90.66)"


def steps(out: str) -> dict[str, str]:
    """The drawing's step rows, by step: the rest of the row after the step's name."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("STAGE"))
    found: dict[str, str] = {}
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        cells = line.removeprefix("on failure").split()
        name, *rest = cells[1:] if cells[0].isdigit() else cells
        found[name] = " ".join(rest)
    return found


def fact(out: str, key: str) -> str:
    match = re.search(rf"^{key} +(.+)$", out, re.M)
    assert match is not None, f"no {key!r} in:\n{out}"
    return match.group(1)


def test_the_etl_worker_declares_each_step_with_its_parameters() -> None:
    declared = {
        spec.name: [(p.name, p.type, p.required) for p in spec.parameters] for spec in EtlWorker.capability_specs()
    }
    assert declared == {
        "extract": [("source", "string", True), ("chunk_size", "integer", False)],
        "transform": [("chunk", "array", True), ("rates", "object", False), ("rates_file", "string", False)],
        "aggregate": [("parts", "array", True)],
        "report": [("total", "object", True), ("title", "string", False)],
        "notify": [("step", "string", True), ("error", "string", True)],
    }


async def test_the_etl_examples_commands_run_fail_on_demand_and_rerun_from_the_failed_step(tmp_path: Path) -> None:
    lines = block(README, "etl")
    assert sum(line.split("  #")[0].strip().endswith("&") for line in lines) == 3  # registry, worker, daemon
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    run, got, _, failed, failed_got, _, rerun, listed = await run_block(lines, tmp_path, wait_for="extract")

    assert run.line == "wa workflow run examples/etl/etl.json --id etl-1 --wait"
    assert fact(run.out, "status") == "COMPLETED" and fact(run.out, "steps") == "4/4 completed"
    drawn = steps(run.out)
    assert drawn["transform"].startswith("COMPLETED 3 extract ")  # a map over three chunks
    assert drawn["report"].startswith("COMPLETED - aggregate ") and "1,032.62 EUR" in drawn["report"]
    assert drawn["alert"] == "- - -"  # the on_failure step did not run
    record = json.loads(got.out)
    assert record["status"] == "COMPLETED" and record["steps"]["report"]["output"] == {"report": REPORT}

    assert failed.line == "wa workflow run examples/etl/etl_failing.json --id etl-2 --wait" and failed.code == 1
    for out in (failed.out, failed_got.out):
        assert fact(out, "status") == "FAILED" and fact(out, "failed step") == "transform"
        assert fact(out, "error") == "task etl-2.transform.1 failed: LookupError: no EUR rate for JPY (order 1006)"
        drawn = steps(out)
        assert drawn["extract"].startswith("COMPLETED ") and drawn["transform"].startswith("FAILED 3 extract ")
        assert drawn["aggregate"].startswith("SKIPPED ") and drawn["report"].startswith("SKIPPED ")
        assert drawn["alert"].startswith('COMPLETED - - {"alert":"ETL failed at step \'transform\': ')
    assert "workflow etl-2 FAILED" in failed.err

    assert rerun.line == "wa workflow rerun etl-2 transform --id etl-3 --watch"
    changes = rerun.out[: rerun.out.index("\n\n")].splitlines()
    assert changes[0] == "workflow etl-3 (etl, a rerun of etl-2 from step transform)"
    assert "extract RUNNING" not in changes and "transform RUNNING (3 tasks)" in changes
    assert changes[-1] == "report COMPLETED"
    assert fact(rerun.out, "rerun of") == "etl-2" and fact(rerun.out, "status") == "COMPLETED"
    drawn = steps(rerun.out)
    assert drawn["extract"].startswith("COMPLETED (kept) ")  # its output kept, not run again
    assert drawn["transform"].startswith("COMPLETED 3 ") and "1,032.62 EUR" in drawn["report"]
    assert (tmp_path / "rates.json").exists()  # (written where the worker runs: the user's directory)

    shown = README.read_text()  # what the README says these commands print, they print
    assert all(f"```\n{ran.out.strip()}\n```" in shown for ran in (run, rerun))
    assert f"```\n{failed.out[failed.out.index(chr(10) * 2) :].strip()}\n```" in shown

    assert [line.split() for line in listed.out.splitlines()] == [
        ["ID", "NAME", "STATUS", "STEPS", "FAILED", "STEP"],
        ["etl-3", "etl", "COMPLETED", "4/4", "-"],
        ["etl-2", "etl", "FAILED", "2/5", "transform"],
        ["etl-1", "etl", "COMPLETED", "4/4", "-"],
    ]
