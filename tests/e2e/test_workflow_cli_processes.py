"""`wa workflow ...` as a user runs it: real `wa registry`, `wa worker` and `wa orchestrator --store` processes,
and each command a process of its own, its output and exit code checked as a shell would see them."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from processes import FAST_REGISTRY, FAST_WORKER, REPO, Daemon, Start, env, wa

from worker_abstraction import RemoteOrchestrator

pytestmark = pytest.mark.timeout(120)

RATES = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "JPY": 0.0061}


async def cluster(start: Start, tmp_path: Path) -> Daemon:
    """A registry, the ETL example's worker, the workflow test worker and a daemon on SQLite; the daemon."""
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    joined = ("--port", "0", "--registry", registry.address, *FAST_WORKER)
    await start("worker", "examples.etl.workers:EtlWorker", *joined, cwd=REPO)
    await start("worker", "_workflow_workers:WorkflowWorker", *joined)
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address,
                         "--store", str(tmp_path / "tasks.db"))  # fmt: skip
    async with RemoteOrchestrator(daemon.address) as remote:  # (a run is checked against the workers it knows)
        await remote.wait_for_workers("extract", timeout_seconds=20)
        await remote.wait_for_workers("square", timeout_seconds=20)
    return daemon


def etl_document(*, rates_file: Path | None = None) -> dict[str, Any]:
    """The ETL example's workflow with absolute paths: its transform reads `rates_file` when one is given."""
    document: dict[str, Any] = json.loads((REPO / "examples" / "etl" / "etl.json").read_text())
    document["steps"][0]["params"]["source"] = str(REPO / "examples" / "etl" / "orders.csv")
    if rates_file is not None:
        document["steps"][1]["params"] = {"rates_file": str(rates_file)}
    return document


def etl(tmp_path: Path, *, rates_file: Path | None = None) -> str:
    """`etl_document` in a file; its path."""
    path = tmp_path / ("etl_failing.json" if rates_file else "etl.json")
    path.write_text(json.dumps(etl_document(rates_file=rates_file)))
    return str(path)


def rows(out: str) -> dict[str, list[str]]:
    """The drawing's step rows by step name: the cells after the name, split on spaces."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["STAGE", "STEP"])
    found: dict[str, list[str]] = {}
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        cells = line.removeprefix("on failure").split()
        cells = cells[1:] if cells[0].isdigit() else cells
        found[cells[0]] = cells[1:]
    return found


async def workflow(daemon: Daemon, *args: str) -> Any:
    return await wa("workflow", *args, "--orchestrator", daemon.address)


async def test_run_get_list_and_watch_as_a_user_runs_them(start: Start, tmp_path: Path) -> None:
    daemon = await cluster(start, tmp_path)
    ran = await workflow(daemon, "run", etl(tmp_path), "--id", "etl-1", "--wait", "--json")
    assert ran.code == 0, ran.err
    submitted, result = (json.loads(line) for line in ran.out.splitlines())
    assert submitted == {"event": "submitted", "workflow_id": "etl-1", "workflow": "etl",
                         "orchestrator": daemon.address}  # fmt: skip
    assert result["event"] == "result" and result["status"] == "COMPLETED"
    assert {name: step["status"] for name, step in result["steps"].items()} == dict.fromkeys(
        ["extract", "transform", "aggregate", "report"], "COMPLETED"
    )
    assert result["steps"]["transform"]["tasks"] == 3  # ten orders in chunks of four
    assert result["steps"]["report"]["output"] == {
        "report": "Orders: 10 orders, 1,032.62 EUR (FR 375.50, DE 238.15, US 231.93, JP 96.38, GB 90.66)"
    }

    got = await workflow(daemon, "get", "etl-1")
    assert got.code == 0, got.err
    assert got.out.splitlines()[:3] == ["workflow  etl-1", "name      etl", "status    COMPLETED"]
    drawn = rows(got.out)
    assert list(drawn) == ["extract", "transform", "aggregate", "report", "alert"]
    assert drawn["extract"][:3] == ["COMPLETED", "-", "-"]
    assert drawn["transform"][:3] == ["COMPLETED", "3", "extract"]
    assert drawn["aggregate"][:3] == ["COMPLETED", "-", "transform"]
    assert drawn["report"][:3] == ["COMPLETED", "-", "aggregate"] and "1,032.62 EUR" in " ".join(drawn["report"])
    assert drawn["alert"] == ["-", "-", "-"]  # the on_failure step did not run

    listed = await workflow(daemon, "list")
    assert listed.code == 0, listed.err
    assert [line.split() for line in listed.out.splitlines()[1:]] == [["etl-1", "etl", "COMPLETED", "4/4", "-"]]

    watched = await workflow(daemon, "watch", "etl-1", "--json")
    assert watched.code == 0, watched.err
    *steps, end = (json.loads(line) for line in watched.out.splitlines())
    assert [s["step"] for s in steps if s["status"] == "COMPLETED"] == ["extract", "transform", "aggregate", "report"]
    assert end == result

    unknown = await workflow(daemon, "get", "etl-0")
    assert (unknown.code, unknown.err.strip()) == (1, f"no workflow 'etl-0' on the orchestrator at {daemon.address}")


async def test_an_invalid_file_lists_every_problem(start: Start, tmp_path: Path) -> None:
    daemon = await cluster(start, tmp_path)
    document = etl_document()
    document["steps"][0]["params"]["chunk_size"] = "four"  # breaks extract's declared integer
    document["steps"][2]["capability"] = "sum_up"  # nobody offers it
    document["steps"][3]["after"] = ["publish"]  # no such step
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    result = await workflow(daemon, "run", str(bad), "--wait")
    assert result.code == 2 and result.out == ""
    first, *problems = result.err.splitlines()
    assert first == f"wa workflow run: the workflow in {bad} cannot run (3 problems):"
    assert "step 'extract'" in problems[0] and "chunk_size" in problems[0]
    assert problems[1] == "  - step 'aggregate': no live worker offers capability 'sum_up'"
    assert problems[2] == "  - step 'report': after names a step that does not exist: 'publish'"
    listed = await workflow(daemon, "list", "--json")
    assert json.loads(listed.out) == []  # nothing ran


async def test_a_failed_run_is_rerun_from_its_failed_step_once_the_cause_is_fixed(start: Start, tmp_path: Path) -> None:
    daemon = await cluster(start, tmp_path)
    rates = tmp_path / "rates.json"
    rates.write_text(json.dumps({k: v for k, v in RATES.items() if k != "JPY"}))
    failed = await workflow(daemon, "run", etl(tmp_path, rates_file=rates), "--id", "etl-2", "--wait")
    assert failed.code == 1
    assert "failed step  transform" in failed.out
    drawn = rows(failed.out)
    assert drawn["extract"][0] == "COMPLETED" and drawn["transform"][:2] == ["FAILED", "3"]
    assert "LookupError: no EUR rate for JPY (order 1006)" in " ".join(drawn["transform"])
    assert drawn["aggregate"][0] == "SKIPPED" and drawn["report"][0] == "SKIPPED"
    assert drawn["alert"][0] == "COMPLETED" and "ETL failed at step 'transform'" in " ".join(drawn["alert"])
    assert "workflow etl-2 FAILED" in failed.err

    rates.write_text(json.dumps(RATES))  # the fix
    again = await workflow(daemon, "rerun", "etl-2", "transform", "--id", "etl-2b", "--wait")
    assert again.code == 0, again.err
    assert again.out.splitlines()[0] == "workflow etl-2b (etl, a rerun of etl-2 from step transform)"
    assert re.search(r"^rerun of +etl-2$", again.out, re.M)
    drawn = rows(again.out)
    assert drawn["extract"][:2] == ["COMPLETED", "(kept)"]  # not run again
    assert [drawn[step][0] for step in ("transform", "aggregate", "report")] == ["COMPLETED"] * 3
    assert "1,032.62 EUR" in " ".join(drawn["report"])

    listed = await workflow(daemon, "list")
    assert [line.split()[:5] for line in listed.out.splitlines()[1:]] == [
        ["etl-2b", "etl", "COMPLETED", "4/4", "-"],
        ["etl-2", "etl", "FAILED", "2/5", "transform"],
    ]


async def test_cancel_stops_a_running_workflow_and_its_watcher_sees_the_end(start: Start, tmp_path: Path) -> None:
    daemon = await cluster(start, tmp_path)
    squares = {
        "workflow": "squares",
        "steps": [
            {"name": "numbers", "capability": "numbers", "params": {"count": 3}},
            {"name": "squares", "capability": "square", "params": {"until_file": str(tmp_path / "never")},
             "map": {"over": {"$output": "numbers"}, "as": "value"}},
            {"name": "total", "capability": "total", "params": {"values": {"$output": "squares"}}},
        ],
    }  # fmt: skip
    file = tmp_path / "squares.json"
    file.write_text(json.dumps(squares))
    ran = await workflow(daemon, "run", str(file))
    assert ran.code == 0, ran.err
    workflow_id = ran.out.strip()
    watcher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker_abstraction.cli", "workflow", "watch", workflow_id, "--json",
        "--orchestrator", daemon.address, env=env(), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert watcher.stdout is not None
    try:
        async with asyncio.timeout(30):
            while (line := json.loads(await watcher.stdout.readline()))["status"] != "RUNNING" or (
                line["step"] != "squares"
            ):
                pass
        canceled = await workflow(daemon, "cancel", workflow_id, "--reason", "no longer needed")
        assert canceled.code == 0, canceled.err
        assert canceled.out.startswith(f"workflow {workflow_id}: canceled")
        async with asyncio.timeout(30):
            rest = (await watcher.stdout.read()).decode().splitlines()
            assert await watcher.wait() == 1  # the run did not complete
    finally:
        if watcher.returncode is None:
            watcher.kill()
            await watcher.wait()
    end = json.loads(rest[-1])
    assert end["event"] == "result" and end["status"] == "CANCELED" and end["steps"]["total"]["status"] != "COMPLETED"
    again = await workflow(daemon, "cancel", workflow_id)
    assert (again.code, again.out.strip()) == (1, f"workflow {workflow_id}: already ended (CANCELED)")


async def test_ctrl_c_while_waiting_leaves_the_run_to_the_daemon_and_says_how_to_reach_it(
    start: Start, tmp_path: Path
) -> None:
    daemon = await cluster(start, tmp_path)
    gate = tmp_path / "open"
    squares = {"workflow": "squares", "steps": [
        {"name": "numbers", "capability": "numbers", "params": {"count": 2}},
        {"name": "squares", "capability": "square", "params": {"until_file": str(gate)},
         "map": {"over": {"$output": "numbers"}, "as": "value"}},
    ]}  # fmt: skip
    file = tmp_path / "squares.json"
    file.write_text(json.dumps(squares))
    waiting = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker_abstraction.cli", "workflow", "run", str(file), "--id", "wf-held", "--watch",
        "--orchestrator", daemon.address, env=env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert waiting.stdout is not None and waiting.stderr is not None
    try:
        async with asyncio.timeout(30):
            while (await waiting.stdout.readline()).decode().strip() != "squares RUNNING (2 tasks)":
                pass
            waiting.send_signal(signal.SIGINT)
            err = (await waiting.stderr.read()).decode()
            assert await waiting.wait() == 130
    finally:
        if waiting.returncode is None:
            waiting.kill()
            await waiting.wait()
        await waiting.stdout.read()  # (to its end: the pipe is closed with it)
    assert f"the orchestrator at {daemon.address} still runs workflow wf-held" in err
    assert f"wa workflow watch wf-held --orchestrator {daemon.address}" in err
    gate.touch()  # the run goes on without its caller
    watched = await workflow(daemon, "watch", "wf-held", "--json")
    assert watched.code == 0, watched.err
    assert json.loads(watched.out.splitlines()[-1])["steps"]["squares"]["output"] == [1, 4]
