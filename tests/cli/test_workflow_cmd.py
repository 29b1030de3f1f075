"""`wa workflow run|get|list|watch|cancel|rerun` in-process against a real registry, workers and orchestrator
daemon on 127.0.0.1:0; the drawing of fixed runs as plain text and on a terminal; the parser; and the help,
which loads nothing heavy.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.cli.test_dlq_cmd import dead_address
from tests.conftest import GATES
from tests.test_startup import HEAVY, SUBSYSTEMS, _found, _loaded
from tests.workflows.steps import StepWorker
from worker_abstraction import BaseWorker, RegistryServer, TaskContext, TaskStatus, capability
from worker_abstraction.cli import UsageError
from worker_abstraction.cli.config import SETTINGS, Settings
from worker_abstraction.cli.main import build_parser, main
from worker_abstraction.cli.workflow_view import as_text, describe_step, render, render_list, stages
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.workflows import StepRecord, Workflow, WorkflowRecord

pytestmark = pytest.mark.timeout(60)

ESC = "\x1b"  # the start of every ANSI control sequence
FIXED: set[str] = set()  # the causes the test fixed (`checked` fails until its cause is in here)


class FixableWorker(BaseWorker):
    @capability
    async def checked(self, value: int, ctx: TaskContext, cause: str = "input") -> int:
        """`value` doubled, once the test fixed `cause`; it fails before."""
        if cause not in FIXED:
            raise LookupError(f"{cause} is broken")
        return value * 2


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("WA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    FIXED.clear()


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[OrchestratorServer]:
    await start_worker(StepWorker, max_concurrent_tasks=32)
    await start_worker(FixableWorker)
    async with OrchestratorServer(registry.address, port=0) as server:
        await server.orchestrator.wait_for_workers("numbers", timeout_seconds=5)
        await server.orchestrator.wait_for_workers("checked", timeout_seconds=5)
        yield server
    GATES.reset()


async def wa(daemon: OrchestratorServer | str, *argv: str) -> int:
    """`wa workflow ARGV... --orchestrator ADDRESS`, in this process; its exit code."""
    address = daemon if isinstance(daemon, str) else daemon.address
    args = build_parser(Settings.load({})).parse_args(["workflow", *argv, "--orchestrator", address])
    async with asyncio.timeout(30):
        code: int = await args.run(args)
    return code


def etl() -> dict[str, Any]:
    """Extract, a map over its chunks and a check beside it, then the total of the map's outputs."""
    return {
        "workflow": "etl",
        "steps": [
            {"name": "extract", "capability": "numbers", "params": {"count": 7, "size": 3}},
            {"name": "transform", "capability": "total", "params": {},
             "map": {"over": {"$output": "extract", "path": ["chunks"]}, "as": "values", "concurrency": 2}},
            {"name": "check", "capability": "double",
             "params": {"value": {"$output": "extract", "path": ["values", -1]}}},
            {"name": "aggregate", "capability": "total", "params": {"values": {"$output": "transform"}}},
        ],
    }  # fmt: skip


def flaky() -> dict[str, Any]:
    """A step that fails until its cause is fixed, between two that do not; an on_failure step."""
    return {
        "workflow": "flaky",
        "steps": [
            {"name": "first", "capability": "double", "params": {"value": 1}},
            {"name": "middle", "capability": "checked", "params": {"value": {"$output": "first"}}},
            {"name": "last", "capability": "double", "params": {"value": {"$output": "middle"}}},
        ],
        "on_failure": {"name": "alert", "capability": "note",
                       "params": {"step": {"$failure": "step"}, "error": {"$failure": "error"}}},
    }  # fmt: skip


def write(path: Path, document: Any) -> str:
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def table(out: str) -> dict[str, list[str]]:
    """The steps' rows of a plain drawing, by step: [STAGE, STATUS, TASKS, WAITS FOR, RESULT...] split on spaces
    (an empty STAGE cell shown as "")."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("STAGE"))
    rows: dict[str, list[str]] = {}
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        if line.startswith("on failure"):
            cells = ["on failure", *line.removeprefix("on failure").split()]
        else:
            cells = line.split() if not line.startswith(" ") else ["", *line.split()]
        rows[cells[1]] = [cells[0], *cells[2:]]
    return rows


def facts(out: str) -> dict[str, str]:
    """The `key  value` lines at the top of a plain drawing (from its `workflow  ID` line on)."""
    found: dict[str, str] = {}
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"workflow {2,}\S", line))
    for line in lines[start:]:
        if not line.strip() or line.startswith("STAGE"):
            break
        key, _, value = line.partition("  ")
        found[key.strip()] = value.strip()
    return found


async def steps_running(daemon: OrchestratorServer, workflow_id: str, step: str) -> None:
    handle = await daemon.orchestrator.watch_workflow(workflow_id)
    async for one in handle:
        if (one.name, one.status) == (step, "RUNNING"):
            return


# ------------------------------------------------------------------------------------------------ run, get


async def test_run_waits_for_the_end_and_draws_each_step_by_stage_with_what_it_waits_for(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path / "etl.json", etl())
    assert await wa(daemon, "run", file, "--id", "wf-etl", "--wait") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "workflow wf-etl (etl)"
    assert facts(out) == {"workflow": "wf-etl", "name": "etl", "status": "COMPLETED", "steps": "4/4 completed"}
    rows = table(out)
    assert list(rows) == ["extract", "transform", "check", "aggregate"]
    assert rows["extract"][:4] == ["1", "COMPLETED", "-", "-"]
    assert rows["transform"][:4] == ["2", "COMPLETED", "3", "extract"]  # a map of three chunks
    assert rows["check"][:5] == ["", "COMPLETED", "-", "extract", "14"]  # stage 2 too
    assert rows["aggregate"][:5] == ["3", "COMPLETED", "-", "transform", "28"]
    assert rows["transform"][4] == "[6,15,7]"

    assert await wa(daemon, "get", "wf-etl") == 0
    assert table(capsys.readouterr().out) == rows
    assert await wa(daemon, "get", "wf-etl", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document == (await daemon.orchestrator.workflow("wf-etl")).to_dict()
    assert document["steps"]["aggregate"] == {"capability": "total", "status": "COMPLETED", "tasks": 1, "output": 28}


async def test_run_without_waiting_prints_the_id_alone_and_reads_stdin(
    daemon: OrchestratorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(etl())))
    assert await wa(daemon, "run", "-", "--idempotency-key", "etl-today", "--priority", "3") == 0
    workflow_id = capsys.readouterr().out.strip()
    record = await (await daemon.orchestrator.watch_workflow(workflow_id)).wait(timeout_seconds=20)
    assert record.status is TaskStatus.COMPLETED and record.outputs["aggregate"] == 28
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(etl())))
    assert await wa(daemon, "run", "-", "--idempotency-key", "etl-today") == 0
    assert capsys.readouterr().out.strip() == workflow_id  # the same key: the first run


async def test_run_json_prints_the_submitted_event_then_the_record(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path / "etl.json", etl())
    assert await wa(daemon, "run", file, "--id", "wf-json", "--wait", "--json") == 0
    submitted, result = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert submitted == {"event": "submitted", "workflow_id": "wf-json", "workflow": "etl",
                         "orchestrator": daemon.address}  # fmt: skip
    record = (await daemon.orchestrator.workflow("wf-json")).to_dict()
    assert result == {"event": "result", **record}
    assert result["status"] == "COMPLETED" and result["steps"]["transform"]["output"] == [6, 15, 7]


# ------------------------------------------------------------------------------------------------- watch


async def test_watch_prints_each_step_change_then_the_drawing(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path / "etl.json", etl())
    assert await wa(daemon, "run", file, "--id", "wf-watch", "--watch") == 0
    out = capsys.readouterr().out
    changes = out[: out.index("\n\n")].splitlines()[1:]
    assert changes.index("extract COMPLETED") < changes.index("transform RUNNING (3 tasks)")
    assert changes.index("transform COMPLETED") < changes.index("aggregate RUNNING")
    assert changes[-1] == "aggregate COMPLETED" and facts(out)["status"] == "COMPLETED"

    assert await wa(daemon, "watch", "wf-watch") == 0  # an ended run: every change again, then the drawing
    again = capsys.readouterr().out
    assert again.splitlines()[0] == "workflow wf-watch (etl)"
    assert again[: again.index("\n\n")].splitlines()[1:] == changes

    assert await wa(daemon, "watch", "wf-watch", "--json") == 0
    *steps, end = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert [(s["event"], s["step"], s["status"]) for s in steps] == [("step", *c.split()[:2]) for c in changes]
    assert steps[0] == {"event": "step", "workflow_id": "wf-watch", "step": "extract", "status": "RUNNING",
                        "tasks": 1}  # fmt: skip
    assert end["event"] == "result" and end["status"] == "COMPLETED" and end["steps"]["aggregate"]["output"] == 28


# ------------------------------------------------------------------------------------- failure and rerun


async def test_a_failed_run_names_its_step_and_a_rerun_after_the_fix_keeps_the_completed_outputs(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path / "flaky.json", flaky())
    assert await wa(daemon, "run", file, "--id", "wf-flaky", "--wait") == 1
    captured = capsys.readouterr()
    told = facts(captured.out)
    assert told["status"] == "FAILED" and told["failed step"] == "middle"
    assert "LookupError: input is broken" in told["error"]
    rows = table(captured.out)
    assert rows["first"][:2] == ["1", "COMPLETED"]
    assert rows["middle"][:4] == ["2", "FAILED", "-", "first"]
    assert " ".join(rows["middle"][4:]) == "task wf-flaky.middle failed: LookupError: input is broken"
    assert rows["last"][:2] == ["3", "SKIPPED"]
    assert rows["alert"][:2] == ["on failure", "COMPLETED"] and '"step":"middle"' in " ".join(rows["alert"])
    assert "workflow wf-flaky FAILED" in captured.err and "LookupError: input is broken" in captured.err

    assert await wa(daemon, "rerun", "wf-flaky", "nowhere") == 2  # no such step: nothing runs
    err = capsys.readouterr().err
    assert "cannot run (1 problem)" in err and "no step 'nowhere'" in err

    FIXED.add("input")
    assert await wa(daemon, "rerun", "wf-flaky", "middle", "--id", "wf-fixed", "--wait") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "workflow wf-fixed (flaky, a rerun of wf-flaky from step middle)"
    assert facts(out)["rerun of"] == "wf-flaky" and facts(out)["status"] == "COMPLETED"
    rows = table(out)
    assert rows["first"][1:3] == ["COMPLETED", "(kept)"]
    assert rows["middle"][1] == "COMPLETED" and rows["middle"][-1] == "4"
    assert rows["last"][1] == "COMPLETED" and rows["last"][-1] == "8"
    assert rows["alert"][1] == "-"  # it did not run

    assert await wa(daemon, "rerun", "wf-fixed", "middle", "--only-this-step", "--id", "wf-alone", "--json",
                    "--watch") == 0  # fmt: skip
    *events, end = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert events[0]["event"] == "submitted" and events[0]["workflow_id"] == "wf-alone"
    assert {e["step"] for e in events[1:] if e["status"] == "RUNNING"} == {"middle"}  # only it ran
    assert end["rerun_of"] == "wf-fixed" and end["steps"]["last"] == {
        "capability": "double", "status": "COMPLETED", "tasks": 0, "output": 8, "kept": True
    }  # fmt: skip


# ------------------------------------------------------------------------------------ list, cancel, unknown


async def test_list_shows_each_run_with_its_status_steps_done_and_failed_step(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa(daemon, "run", write(tmp_path / "etl.json", etl()), "--id", "wf-a", "--wait") == 0
    assert await wa(daemon, "run", write(tmp_path / "flaky.json", flaky()), "--id", "wf-b", "--wait") == 1
    gated = {"workflow": "gated", "steps": [{"name": "one", "capability": "double", "params": {"value": 1}},
                                            {"name": "two", "capability": "gate", "params": {"name": "g"},
                                             "after": ["one"]}]}  # fmt: skip
    assert await wa(daemon, "run", write(tmp_path / "gated.json", gated), "--id", "wf-c") == 0
    await steps_running(daemon, "wf-c", "two")
    capsys.readouterr()
    try:
        assert await wa(daemon, "list") == 0
        header, *rows = capsys.readouterr().out.splitlines()
        assert header.split() == ["ID", "NAME", "STATUS", "STEPS", "FAILED", "STEP"]
        assert [row.split() for row in rows] == [
            ["wf-c", "gated", "RUNNING", "1/2", "-"],  # where it stands now, not only its latest change
            ["wf-b", "flaky", "FAILED", "2/4", "middle"],
            ["wf-a", "etl", "COMPLETED", "4/4", "-"],
        ]
        assert await wa(daemon, "list", "--status", "failed", "--json") == 0
        [only] = json.loads(capsys.readouterr().out)
        assert only["workflow_id"] == "wf-b" and only["failed_step"] == "middle"
        assert await wa(daemon, "list", "--limit", "1") == 0
        assert [row.split()[0] for row in capsys.readouterr().out.splitlines()[1:]] == ["wf-c"]
    finally:
        GATES.open("g")


async def test_cancel_says_it_canceled_a_running_run_then_that_it_had_ended(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gated = {"workflow": "gated", "steps": [{"name": "wait", "capability": "gate", "params": {"name": "never"}},
                                            {"name": "after", "capability": "double", "params": {"value": 1},
                                             "after": ["wait"]}]}  # fmt: skip
    assert await wa(daemon, "run", write(tmp_path / "gated.json", gated), "--id", "wf-cancel") == 0
    await steps_running(daemon, "wf-cancel", "wait")
    capsys.readouterr()
    assert await wa(daemon, "cancel", "wf-cancel", "--reason", "not today") == 0
    assert capsys.readouterr().out.startswith("workflow wf-cancel: canceled")
    record = await (await daemon.orchestrator.watch_workflow("wf-cancel")).wait(timeout_seconds=10)
    assert record.status is TaskStatus.CANCELED and record.steps["after"].status != "COMPLETED"
    assert await wa(daemon, "cancel", "wf-cancel") == 1
    assert capsys.readouterr().out.strip() == "workflow wf-cancel: already ended (CANCELED)"
    assert await wa(daemon, "watch", "wf-cancel") == 1  # it did not complete


@pytest.mark.parametrize("argv", [["get", "nope"], ["watch", "nope"], ["cancel", "nope"], ["rerun", "nope", "x"]])
async def test_an_unknown_id_is_named_and_exits_1(
    daemon: OrchestratorServer, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa(daemon, *argv) == 1
    assert capsys.readouterr().err.strip() == f"no workflow 'nope' on the orchestrator at {daemon.address}"


async def test_a_task_is_no_workflow(daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]) -> None:
    task = await daemon.orchestrator.execute_task("double", {"value": 2})
    await task.wait(timeout_seconds=10)
    assert await wa(daemon, "get", task.task_id) == 1
    assert f"no workflow '{task.task_id}'" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "code"), [(["get", "x"], 1), (["list"], 1), (["cancel", "x"], 1), (["run"], 2)])
async def test_a_daemon_that_cannot_be_reached_is_named(
    argv: list[str], code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = dead_address()
    if argv == ["run"]:
        argv = ["run", write(tmp_path / "etl.json", etl())]
    assert await wa(address, *argv) == code
    assert capsys.readouterr().err.startswith(f"cannot reach the orchestrator at {address}: ")


# ------------------------------------------------------------------------------------------ invalid files


async def test_an_invalid_file_lists_every_problem_and_exits_2(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa(daemon, "run", write(tmp_path / "broken.json", '{"workflow": "x", "steps": [')) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"wa workflow run: the workflow in {tmp_path / 'broken.json'} cannot run (1 problem):"
    assert err[1].startswith("  - not JSON: ")

    shapeless = {"workflow": 3, "colour": "red", "steps": [{"name": "a", "capability": "double", "when": "now"}]}
    assert await wa(daemon, "run", write(tmp_path / "shapeless.json", shapeless), "--json") == 2
    captured = capsys.readouterr()
    problems = [line.removeprefix("  - ") for line in captured.err.splitlines()[1:]]
    assert len(problems) == 3 and "(3 problems)" in captured.err.splitlines()[0]
    assert any("colour" in p for p in problems) and any("when" in p for p in problems)
    assert any('"workflow" (its name) must be a string' in p for p in problems)
    result = json.loads(captured.out)
    assert result["event"] == "result" and result["workflow_id"] is None and result["status"] is None
    assert result["error"]["type"] == "InvalidParametersError" and result["error"]["problems"] == problems

    unrunnable = {"workflow": "x", "steps": [
        {"name": "a", "capability": "numbers", "params": {"count": "many"}},
        {"name": "b", "capability": "no-such-capability"},
        {"name": "c", "capability": "double", "params": {"value": 1}, "after": ["missing"]},
    ]}  # fmt: skip
    assert await wa(daemon, "run", write(tmp_path / "unrunnable.json", unrunnable)) == 2
    err = capsys.readouterr().err.splitlines()
    assert "(3 problems)" in err[0] and len(err) == 4  # the daemon checked it whole, against its workers
    assert "step 'a'" in err[1] and "count" in err[1]
    assert "no live worker offers capability 'no-such-capability'" in err[2]
    assert "after names a step that does not exist: 'missing'" in err[3]
    assert await daemon.orchestrator.workflows() == []  # nothing ran

    with pytest.raises(UsageError, match="no such file"):
        await wa(daemon, "run", str(tmp_path / "absent.json"))


def test_a_file_that_cannot_be_read_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflow", "run", str(tmp_path / "absent.json"), "--orchestrator", dead_address()]) == 2
    assert capsys.readouterr().err.strip() == f"wa workflow: error: no such file {tmp_path / 'absent.json'}"


async def test_an_id_taken_before_is_not_run_again(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path / "etl.json", etl())
    assert await wa(daemon, "run", file, "--id", "wf-once", "--wait") == 0
    assert await wa(daemon, "run", file, "--id", "wf-once") == 2
    assert "TaskExistsError" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- the drawing


def diamond() -> Workflow:
    flow = Workflow("diamond")
    top = flow.step("top", "numbers", {"count": 2})
    left = flow.map("left", "double", over=top["values"], item="value")
    right = flow.step("right", "double", {"value": 1})
    flow.step("bottom", "total", {"values": left}, after=[right])
    flow.on_failure("alert", "note")
    return flow


def test_stages_put_each_step_after_every_step_it_waits_for() -> None:
    assert [[step.name for step in stage] for stage in stages(diamond())] == [["top", "right"], ["left"], ["bottom"]]


def test_a_failed_rerun_is_drawn_with_its_failed_step_kept_outputs_map_tasks_and_errors() -> None:
    record = WorkflowRecord(
        "wf-2",
        "diamond",
        TaskStatus.FAILED,
        {
            "top": StepRecord("top", "numbers", "COMPLETED", {"values": [1, 2]}, tasks=1, kept=True),
            "left": StepRecord("left", "double", "FAILED", error="task wf-2.left.1 failed: ValueError: odd", tasks=2),
            "right": StepRecord("right", "double", "CANCELED", error="step 'left' failed", tasks=1),
            "bottom": StepRecord("bottom", "total", "SKIPPED", error="a step it waits for did not complete"),
            "alert": StepRecord("alert", "note", "COMPLETED", {"sent": True}, tasks=1),
        },
        failed_step="left",
        error="step 'left' failed: task wf-2.left.1 failed: ValueError: odd",
        rerun_of="wf-1",
    )
    out = as_text(render(record, diamond(), plain=True))
    assert facts(out) == {
        "workflow": "wf-2",
        "name": "diamond",
        "status": "FAILED",
        "failed step": "left",
        "error": "step 'left' failed: task wf-2.left.1 failed: ValueError: odd",
        "rerun of": "wf-1",
        "steps": "2/5 completed",
    }
    rows = table(out)
    assert list(rows) == ["top", "right", "left", "bottom", "alert"]
    assert rows["top"] == ["1", "COMPLETED", "(kept)", "-", "-", '{"values":[1,2]}']
    assert rows["right"] == ["", "CANCELED", "-", "-", "step", "'left'", "failed"]
    assert rows["left"][:4] == ["2", "FAILED", "2", "top"]
    assert rows["bottom"][:5] == ["3", "SKIPPED", "-", "right,", "left"]  # its `after`, then its references
    assert rows["alert"] == ["on failure", "COMPLETED", "-", "-", '{"sent":true}']
    assert ESC not in out

    coloured = io.StringIO()
    Console(file=coloured, force_terminal=True, width=200).print(render(record, diamond()))
    assert ESC in coloured.getvalue() and "left" in coloured.getvalue()


def test_a_running_run_shows_its_waiting_steps_and_a_map_not_started() -> None:
    top = StepRecord("top", "numbers", "RUNNING", tasks=1)
    record = WorkflowRecord("wf-3", "diamond", TaskStatus.RUNNING, {"top": top})
    rows = table(as_text(render(record, diamond(), plain=True)))
    assert rows["top"][:2] == ["1", "RUNNING"]
    assert rows["left"][:3] == ["2", "WAITING", "map"] and rows["alert"][:2] == ["on failure", "WAITING"]


def test_the_list_and_the_step_lines() -> None:
    records = [
        WorkflowRecord("wf-1", "etl", TaskStatus.COMPLETED, {"a": StepRecord("a", "x", "COMPLETED")}),
        WorkflowRecord("wf-2", "", TaskStatus.FAILED, {"a": StepRecord("a", "x", "FAILED")}, failed_step="a"),
    ]
    lines = as_text(render_list(records, plain=True)).splitlines()
    assert [line.split() for line in lines] == [
        ["ID", "NAME", "STATUS", "STEPS", "FAILED", "STEP"],
        ["wf-1", "etl", "COMPLETED", "1/1", "-"],
        ["wf-2", "-", "FAILED", "0/1", "a"],
    ]
    assert describe_step(StepRecord("m", "", "RUNNING", tasks=4), mapped=True) == "m RUNNING (4 tasks)"
    assert describe_step(StepRecord("s", "", "RUNNING", tasks=1)) == "s RUNNING"
    assert describe_step(StepRecord("s", "", "FAILED", error="boom\n  at line 3")) == "s FAILED: boom at line 3"


# ------------------------------------------------------------------------------------------ parser, help


def test_the_parser_reads_each_action_and_refuses_wait_with_watch() -> None:
    parser = build_parser(Settings.load({}))
    rerun = parser.parse_args(["workflow", "rerun", "wf-1", "transform", "--only-this-step", "--id", "wf-2", "--watch"])
    assert (rerun.workflow_id, rerun.step, rerun.only_this_step, rerun.new_id) == ("wf-1", "transform", True, "wf-2")
    assert (rerun.watch, rerun.wait, rerun.json) == (True, False, False)
    listing = parser.parse_args(["workflow", "list", "--status", "Failed", "--limit", "3", "--json"])
    assert (listing.status, listing.limit, listing.json) == (TaskStatus.FAILED, 3, True)
    assert main(["workflow", "run", "f.json", "--wait", "--watch"]) == 2
    assert main(["workflow", "list", "--status", "done"]) == 2
    assert main(["workflow", "list", "--limit", "0"]) == 2


def test_the_help_of_workflow_and_its_actions_loads_none_of_the_heavy_parts() -> None:
    argvs = [["workflow", "--help"], *(["workflow", action, "--help"] for action in ("run", "get", "list", "rerun"))]
    statements = (
        "import contextlib, io\nfrom worker_abstraction.cli.main import main\n"
        f"for argv in {argvs!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        assert main(argv) == 0, argv\n"
        "    assert 'usage: wa workflow' in out.getvalue(), argv\n"
    )
    assert _found(_loaded(statements), HEAVY + SUBSYSTEMS) == []
