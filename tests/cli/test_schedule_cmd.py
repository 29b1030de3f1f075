"""`wa schedule add|update|list|get|pause|resume|remove|trigger` in-process against a real registry, workers and
orchestrator daemon on 127.0.0.1:0: an every-second schedule seen firing (each run of the worker is an event
the test awaits), its facts, pause and resume, trigger with and without following, a workflow schedule,
the JSON form given back whole, every problem of a bad definition, unknown names; the drawing of fixed
schedules (a cron one over a change of daylight-saving time); the parser and the help, which loads nothing
heavy."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_dlq_cmd import dead_address
from tests.test_startup import HEAVY, SUBSYSTEMS, _found, _loaded
from tests.workflows.steps import StepWorker
from worker_abstraction import BaseWorker, RegistryServer, TaskContext, capability
from worker_abstraction.cli import UsageError, schedule_definition
from worker_abstraction.cli.config import SETTINGS, Settings
from worker_abstraction.cli.main import build_parser, main
from worker_abstraction.cli.schedule_view import definition_of, next_occurrences, render, render_table
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.schedules import Schedule, ScheduleInfo, ScheduleState
from worker_abstraction.schedules.model import MISSED, MISSED_LATEST, OVERLAP, OVERLAP_SKIP

pytestmark = pytest.mark.timeout(60)

RUNS: dict[str, asyncio.Queue[tuple[str, dict[str, Any]]]] = {}  # label -> (task id, params) of each run


class TickWorker(BaseWorker):
    @capability
    async def tick(self, ctx: TaskContext, label: str, count: int = 1) -> dict[str, Any]:
        """Tell the test it ran (under `label`); its arguments back."""
        RUNS.setdefault(label, asyncio.Queue()).put_nowait((ctx.task_id, {"label": label, "count": count}))
        return {"label": label, "count": count}

    @capability
    async def broken(self, ctx: TaskContext) -> None:
        """Always fails."""
        raise ValueError("broken on purpose")


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("WA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    RUNS.clear()


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[OrchestratorServer]:
    await start_worker(TickWorker)
    await start_worker(StepWorker)
    async with OrchestratorServer(registry.address, port=0) as server:
        await server.orchestrator.wait_for_workers("tick", timeout_seconds=5)
        await server.orchestrator.wait_for_workers("numbers", timeout_seconds=5)
        yield server


async def wa(daemon: OrchestratorServer | str, *argv: str) -> int:
    """`wa schedule ARGV... --orchestrator ADDRESS`, in this process; its exit code."""
    address = daemon if isinstance(daemon, str) else daemon.address
    args = build_parser(Settings.load({})).parse_args(["schedule", *argv, "--orchestrator", address])
    async with asyncio.timeout(30):
        code: int = await args.run(args)
    return code


async def ran(label: str) -> tuple[str, dict[str, Any]]:
    """The next run of `tick` under `label`: (its task id, its arguments)."""
    async with asyncio.timeout(10):
        return await RUNS.setdefault(label, asyncio.Queue()).get()


def facts(out: str) -> dict[str, str]:
    """The `key  value` lines of `get` (up to its `next` lines)."""
    found = {}
    for line in out.splitlines():
        if line.startswith(("next", "  ")):
            break
        key, _, value = line.partition("  ")
        found[key.strip()] = value.strip()
    return found


def table(out: str) -> list[list[str]]:
    """The list's rows split on runs of two spaces or more."""
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in out.splitlines()]


def write(path: Path, document: Any) -> str:
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


# ------------------------------------------------------------------------- add, get, list, update


async def test_an_every_second_schedule_fires_and_get_and_list_show_it(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("add", "beat", "tick", "-p", "label=007", "-p", "count=3", "--every", "1s", "--description", "a beat")
    assert await wa(daemon, *argv) == 0
    made = capsys.readouterr().out
    assert facts(made) | {"created": ""} == {
        "schedule": "beat",
        "runs": "tick",
        "params": '{"count":3,"label":"007"}',  # "007" stays a string: `label` is declared a string
        "timing": "every 1s",
        "state": "active",
        "overlap": "skip",
        "missed": "latest",
        "description": "a beat",
        "created": "",
        "last run": "-",
        "fired": "0",
        "skipped": "0",
    }
    assert "next (5):" in made and len([line for line in made.splitlines() if line.startswith("  ")]) == 5

    first, params = await ran("007")
    assert first.startswith("beat@") and params == {"label": "007", "count": 3}
    second, _ = await ran("007")
    assert second > first  # ids made from the occurrences, one second apart

    assert await wa(daemon, "get", "beat", "--json") == 0
    got = json.loads(capsys.readouterr().out)
    assert got["name"] == "beat" and got["every_seconds"] == 1 and got["fired"] >= 2
    assert got["last_run"] >= second and got["last_run_status"] in ("RUNNING", "COMPLETED")
    assert len(got["next_occurrences"]) == 5 and got["next_occurrences"][0] == got["next_occurrence"]
    assert got["paused"] is False and got["last_error"] == ""

    assert await wa(daemon, "list") == 0
    header, row = table(capsys.readouterr().out)
    assert header == ["NAME", "RUNS", "TIMING", "NEXT", "LAST RUN", "FIRED", "SKIPPED", "PAUSED"]
    assert row[:3] == ["beat", "tick", "every 1s"] and re.fullmatch(r"\S+ \d\d:\d\d:\d\d UTC \(in [0-9]s\)", row[3])
    assert row[4].startswith("beat@") and row[-1] == "no"

    assert await wa(daemon, "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["name"], s["capability"]) for s in listed] == [("beat", "tick")]

    assert await wa(daemon, "update", "beat", "tick", "-p", "label=updated", "--every", "1h") == 0
    updated = facts(capsys.readouterr().out)
    assert updated["timing"] == "every 1h" and int(updated["fired"]) >= 2  # how it went is kept
    assert updated["params"] == '{"label":"updated"}'


async def test_pause_shows_it_paused_and_resume_with_run_now_runs_it_once(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa(daemon, "add", "yearly", "tick", "-p", "label=yearly", "--cron", "0 0 1 1 *") == 0
    capsys.readouterr()
    assert await wa(daemon, "pause", "yearly") == 0
    assert capsys.readouterr().out.strip() == "schedule yearly: paused: it fires nothing until resumed"
    assert await wa(daemon, "get", "yearly") == 0
    out = capsys.readouterr().out
    assert facts(out)["state"] == "paused" and out.splitlines()[-1] == "next: none while paused"
    assert await wa(daemon, "list") == 0
    assert table(capsys.readouterr().out)[1][3:] == ["-", "-", "0", "0", "yes"]
    assert await wa(daemon, "update", "yearly", "tick", "-p", "label=yearly", "--cron", "0 0 2 1 *") == 0
    assert facts(capsys.readouterr().out)["state"] == "paused"  # an update from flags leaves it paused

    assert await wa(daemon, "resume", "yearly", "--run-now") == 0
    said = capsys.readouterr().out.strip()
    task_id, _ = await ran("yearly")
    assert task_id.startswith("yearly@manual-")
    assert said.startswith("schedule yearly: resumed: next at ") and " UTC (in " in said
    assert said.endswith(f"; one run now: {task_id}")
    assert await wa(daemon, "pause", "yearly", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["paused"] is True and document["cron"] == "0 0 2 1 *"

    # A JSON form that unpauses it resumes it, as `resume` does (from now on, nothing that passed meanwhile).
    assert await wa(daemon, "update", "--from-json", write(tmp_path / "y.json", {**document, "paused": False})) == 0
    resumed = await daemon.orchestrator.schedule("yearly")
    assert not resumed.schedule.paused and resumed.state.resumed_at is not None
    assert resumed.state.resumed_at > datetime.fromisoformat(document["resumed_at"])


async def test_trigger_prints_the_run_and_with_wait_follows_it_to_its_end(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa(daemon, "add", "manual", "tick", "-p", "label=manual", "--cron", "0 0 1 1 *", "--paused") == 0
    capsys.readouterr()
    assert await wa(daemon, "trigger", "manual") == 0
    printed = capsys.readouterr().out.strip()
    assert (await ran("manual"))[0] == printed and printed.startswith("manual@manual-")

    assert await wa(daemon, "trigger", "manual", "--wait") == 0
    lines = capsys.readouterr().out.splitlines()
    task_id, _ = await ran("manual")
    assert lines[0] == f"task {task_id} (schedule manual)" and "COMPLETED" in lines
    assert json.loads("\n".join(lines[lines.index("COMPLETED") + 1 :])) == {"label": "manual", "count": 1}

    assert await wa(daemon, "trigger", "manual", "--wait", "--json") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    task_id, _ = await ran("manual")
    assert events[0] == {"event": "submitted", "task_id": task_id, "schedule": "manual",
                         "orchestrator": daemon.address}  # fmt: skip
    assert {e["status"] for e in events if e["event"] == "update"} >= {"COMPLETED"}
    assert events[-1] == {"event": "result", "task_id": task_id, "status": "COMPLETED",
                          "output": {"label": "manual", "count": 1}}  # fmt: skip

    assert await wa(daemon, "add", "doomed", "broken", "--cron", "0 0 1 1 *", "--paused") == 0
    capsys.readouterr()
    assert await wa(daemon, "trigger", "doomed", "--wait") == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out.splitlines() and "ValueError: broken on purpose" in captured.err
    assert await wa(daemon, "get", "doomed") == 0
    assert facts(capsys.readouterr().out)["last run"].endswith(" FAILED")


async def test_a_workflow_schedule_runs_its_file(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = {"workflow": "sums", "steps": [
        {"name": "make", "capability": "numbers", "params": {"count": 4}},
        {"name": "add", "capability": "total", "params": {"values": {"$output": "make", "path": ["values"]}}},
    ]}  # fmt: skip
    file = write(tmp_path / "sums.json", flow)
    argv = ("add", "sums-daily", "--workflow", file, "--cron", "@daily", "--timezone", "Europe/Paris")
    assert await wa(daemon, *argv) == 0
    made = facts(capsys.readouterr().out)
    assert (made["runs"], made["steps"], made["timing"]) == ("workflow sums", "2", "cron '@daily' Europe/Paris")
    assert await wa(daemon, "trigger", "sums-daily", "--wait", "--json") == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["status"] == "COMPLETED" and result["task_id"].startswith("sums-daily@manual-")
    record = await daemon.orchestrator.workflow(result["task_id"])
    assert record.steps["add"].output == 10
    assert await wa(daemon, "list") == 0
    assert table(capsys.readouterr().out)[1][:3] == ["sums-daily", "workflow sums", "cron '@daily' Europe/Paris"]
    info = await daemon.orchestrator.schedule("sums-daily")
    assert info.schedule.options.timeout_seconds == 0  # a workflow's run has no timeout unless given

    with pytest.raises(UsageError, match="-p sets a capability's parameters"):
        await wa(daemon, "add", "x", "--workflow", file, "-p", "a=1", "--cron", "@daily")
    bad = write(tmp_path / "bad.json", {"steps": 3})
    assert await wa(daemon, "add", "bad-flow", "--workflow", bad, "--every", "0") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("wa schedule add: schedule 'bad-flow' cannot be made (")
    assert any(line.startswith(f"  - workflow {bad}: ") for line in err)
    assert "  - give a cron expression or every_seconds, one of the two" in err


async def test_the_json_form_is_taken_back_whole_renamed_or_as_an_update(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ("add", "report", "tick", "-p", "label=r", "--cron", "30 2 * * *", "--timezone", "America/New_York",
            "--overlap", "buffer_one", "--missed", "all", "--grace", "2h", "--timeout", "30", "--retries", "2",
            "--priority", "5", "--require-tag", "gpu", "--paused")  # fmt: skip
    assert await wa(daemon, *argv) == 0
    capsys.readouterr()
    assert await wa(daemon, "get", "report", "--json") == 0
    printed = capsys.readouterr().out
    saved = write(tmp_path / "report.json", printed)
    original = await daemon.orchestrator.schedule("report")

    assert await wa(daemon, "add", "report-copy", "--from-json", saved) == 0
    capsys.readouterr()
    copy = await daemon.orchestrator.schedule("report-copy")
    assert copy.schedule == Schedule.from_dict({**original.schedule.to_dict(), "name": "report-copy"})
    assert copy.schedule.options.retry_policy is not None and copy.schedule.options.retry_policy.max_attempts == 3
    monkeypatch.setattr(sys, "stdin", io.StringIO(printed))  # `wa schedule get report --json | wa schedule add ...`
    assert await wa(daemon, "add", "report-piped", "--from-json", "-") == 0
    assert (await daemon.orchestrator.schedule("report-piped")).schedule.cron == "30 2 * * *"
    capsys.readouterr()

    document = json.loads(printed)
    document["cron"] = "45 3 * * *"
    assert await wa(daemon, "update", "--from-json", write(tmp_path / "changed.json", document), "--json") == 0
    assert json.loads(capsys.readouterr().out)["cron"] == "45 3 * * *"
    assert (await daemon.orchestrator.schedule("report")).schedule.overlap == "buffer_one"
    assert await wa(daemon, "get", "report") == 0
    assert facts(capsys.readouterr().out)["task options"] == (
        '{"priority":5,"required_tags":["gpu"],"retry_policy":{"max_attempts":3,"retry_task_errors":false},'
        '"timeout_seconds":30.0}'
    )

    with pytest.raises(UsageError, match="--from-json gives the whole schedule: drop CAPABILITY, --cron"):
        await wa(daemon, "add", "x", "tick", "--cron", "@daily", "--from-json", saved)
    assert await wa(daemon, "add", "--from-json", write(tmp_path / "odd.json", {"name": "odd", "colour": 1})) == 2
    err = capsys.readouterr().err
    assert "unknown schedule fields: ['colour']" in err and "capability is missing" in err


async def test_a_bad_definition_lists_every_problem_and_a_taken_name_is_refused(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("add", "bad name", "tick", "--cron", "99 * * * *", "--timezone", "Mars/Olympus", "--timeout", "-1")
    assert await wa(daemon, *argv, "--json") == 2
    captured = capsys.readouterr()
    problems = [line.removeprefix("  - ") for line in captured.err.splitlines()[1:]]
    assert captured.err.splitlines()[0] == "wa schedule add: schedule 'bad name' cannot be made (4 problems):"
    assert problems[0].startswith("timeout_seconds must be 0 (none) to")
    assert any(p.startswith("name 'bad name' must be") for p in problems)
    assert any(p.startswith("cron '99 * * * *' is not a cron expression") for p in problems)
    assert any(p.startswith("timezone 'Mars/Olympus' is not an IANA time zone") for p in problems)
    assert json.loads(captured.out)["error"]["problems"] == problems

    assert await wa(daemon, "add", "half", "tick", "-p", "label=x", "--every", "1.5s") == 2
    assert "--every must be whole seconds, got 1.5s" in capsys.readouterr().err
    assert main(["schedule", "add", "both", "tick", "--cron", "@daily", "--every", "5"]) == 2  # one of the two

    assert await wa(daemon, "add", "taken", "tick", "-p", "label=t", "--cron", "@yearly") == 0
    assert await wa(daemon, "add", "taken", "tick", "-p", "label=t", "--cron", "@yearly") == 2
    assert "ScheduleExistsError: a schedule named 'taken' exists already" in capsys.readouterr().err
    with pytest.raises(UsageError, match="give CAPABILITY or --workflow FILE"):
        await wa(daemon, "add", "nothing", "--cron", "@daily")
    with pytest.raises(UsageError, match="give the schedule's NAME"):
        await wa(daemon, "add")


@pytest.mark.parametrize(
    "argv",
    [["get", "nope"], ["pause", "nope"], ["resume", "nope"], ["remove", "nope"], ["trigger", "nope"],
     ["update", "nope", "tick", "--every", "5"]],
)  # fmt: skip
async def test_an_unknown_name_is_named_and_exits_1(
    daemon: OrchestratorServer, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa(daemon, *argv) == 1
    assert capsys.readouterr().err.strip() == f"no schedule 'nope' on the orchestrator at {daemon.address}"


async def test_remove_says_so_and_the_schedule_is_gone(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa(daemon, "add", "gone", "tick", "-p", "label=g", "--cron", "@yearly") == 0
    assert await wa(daemon, "remove", "gone") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "schedule gone: removed (its runs so far stay)"
    assert await wa(daemon, "get", "gone") == 1
    assert await wa(daemon, "list", "--json") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == []
    assert await wa(daemon, "list") == 0
    assert capsys.readouterr().err.strip() == "no schedules"


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["list"], 1),
        (["get", "x"], 1),
        (["pause", "x"], 1),
        (["trigger", "x"], 2),
        (["add", "x", "y", "--every", "5"], 2),
    ],
)
async def test_a_daemon_that_cannot_be_reached_is_named(
    argv: list[str], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    address = dead_address()
    assert await wa(address, *argv) == code
    assert capsys.readouterr().err.startswith(f"cannot reach the orchestrator at {address}: ")


# ------------------------------------------------------------------------------------------- the drawing


def info(schedule: Schedule, **state: Any) -> ScheduleInfo:
    made = ScheduleState(created_at=datetime(2026, 3, 1, tzinfo=UTC), **state)
    upcoming = None if schedule.paused else schedule.timing.after(datetime(2026, 3, 6, 12, tzinfo=UTC))
    return ScheduleInfo(schedule, made, upcoming)


def test_get_shows_the_next_occurrences_in_the_schedules_zone_over_a_change_of_daylight_saving_time() -> None:
    nightly = Schedule("nightly", "report", {"day": "yesterday"}, cron="30 2 * * *", timezone="America/New_York")
    shown = info(nightly, last_run="nightly@20260306T073000Z", fired=5, skipped=1, last_error="no worker", owner="ops")
    out = render(shown, "FAILED", now=datetime(2026, 3, 6, 12, tzinfo=UTC))
    assert facts(out) == {
        "schedule": "nightly",
        "runs": "report",
        "params": '{"day":"yesterday"}',
        "timing": "cron '30 2 * * *' America/New_York",
        "state": "active",
        "overlap": "skip",
        "missed": "latest",
        "created": "2026-02-28 19:00:00 EST (5d12h ago)",
        "last run": "nightly@20260306T073000Z FAILED",
        "fired": "5",
        "skipped": "1",
        "last error": "no worker",
        "owner": "ops",
    }
    assert out.splitlines()[-6:] == [
        "next (5):",
        "  2026-03-07 02:30:00 EST  (in 19h30m)",
        "  2026-03-08 03:30:00 EDT  (in 1d19h)",  # 02:30 does not exist that day: it fires an hour later
        "  2026-03-09 02:30:00 EDT  (in 2d18h)",
        "  2026-03-10 02:30:00 EDT  (in 3d18h)",
        "  2026-03-11 02:30:00 EDT  (in 4d18h)",
    ]


def test_the_list_and_a_paused_interval_schedule() -> None:
    beat = Schedule("beat", "tick", every_seconds=90, start_at=datetime(2026, 3, 1, tzinfo=UTC))
    paused = Schedule.of_workflow("flow", {"workflow": "etl", "steps": []}, cron="@hourly", paused=True)
    infos = [info(beat, last_run="beat@20260306T115930Z"), info(paused)]
    assert next_occurrences(infos[1]) == []
    assert next_occurrences(infos[0], 3) == [datetime(2026, 3, 6, 12, 1, 30, tzinfo=UTC),
                                             datetime(2026, 3, 6, 12, 3, tzinfo=UTC),
                                             datetime(2026, 3, 6, 12, 4, 30, tzinfo=UTC)]  # fmt: skip
    out = render_table(infos, {"beat": "COMPLETED"}, now=datetime(2026, 3, 6, 12, tzinfo=UTC))
    assert table(out) == [
        ["NAME", "RUNS", "TIMING", "NEXT", "LAST RUN", "FIRED", "SKIPPED", "PAUSED"],
        ["beat", "tick", "every 90s from 2026-03-01 00:00:00 UTC", "2026-03-06 12:01:30 UTC (in 1m30s)",
         "beat@20260306T115930Z COMPLETED", "0", "0", "no"],
        ["flow", "workflow etl", "cron '@hourly' UTC", "-", "-", "0", "0", "yes"],
    ]  # fmt: skip
    assert render(infos[1]).splitlines()[-1] == "next: none while paused"
    assert definition_of({"name": "x", "fired": 3, "next_occurrences": [], "colour": 1}) == {"name": "x", "colour": 1}


# ------------------------------------------------------------------------------------------ parser, help


def test_the_parser_offers_the_models_policies_and_defaults() -> None:
    assert schedule_definition.OVERLAP == OVERLAP and schedule_definition.MISSED == MISSED
    assert (schedule_definition.DEFAULT_OVERLAP, schedule_definition.DEFAULT_MISSED) == (OVERLAP_SKIP, MISSED_LATEST)
    assert Schedule("x", "y").grace_seconds == schedule_definition.DEFAULT_GRACE_SECONDS
    parser = build_parser(Settings.load({}))
    add = parser.parse_args(["schedule", "add", "n", "cap", "--every", "5m", "--grace", "2h", "--start-at",
                             "2026-12-08T09:00:00+01:00", "--overlap", "allow_all"])  # fmt: skip
    assert (add.name, add.capability, add.every, add.grace, add.overlap) == ("n", "cap", 300.0, 7200.0, "allow_all")
    assert add.start_at == datetime(2026, 12, 8, 8, tzinfo=UTC)
    assert main(["schedule", "add", "n", "cap", "--overlap", "sometimes"]) == 2
    assert main(["schedule", "add", "n", "cap", "--every", "soon"]) == 2
    assert main(["schedule", "resume"]) == 2


def test_the_help_of_schedule_and_its_actions_loads_none_of_the_heavy_parts() -> None:
    actions = ("add", "update", "list", "get", "pause", "resume", "remove", "trigger")
    argvs = [["schedule", "--help"], *(["schedule", action, "--help"] for action in actions)]
    statements = (
        "import contextlib, io, sys\nfrom worker_abstraction.cli.main import main\n"
        f"for argv in {argvs!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        assert main(argv) == 0, argv\n"
        "    assert 'usage: wa schedule' in out.getvalue(), argv\n"
    )
    loaded = _loaded(statements)
    assert _found(loaded, (*HEAVY, *SUBSYSTEMS, "croniter", "worker_abstraction.schedules")) == []
