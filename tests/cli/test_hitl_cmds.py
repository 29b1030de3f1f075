"""`wa respond`, `wa approve`, `wa deny`, `wa submit --stream` and what `wa task get|list` show of questions,
answers and approvals: in-process against a real registry, the asking test worker and an orchestrator daemon
on 127.0.0.1:0; the chunk printer and the status line alone."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import eventually
from tests.hitl.workers import AskingWorker
from worker_abstraction import RegistryServer, TaskStatus, TaskUpdate
from worker_abstraction.cli import UsageError
from worker_abstraction.cli.chunks import ChunkPrinter
from worker_abstraction.cli.config import SETTINGS, Settings
from worker_abstraction.cli.main import build_parser, main
from worker_abstraction.cli.output import DROPPED, is_output, status_line
from worker_abstraction.exchanges import InputRequest, OutputChunk
from worker_abstraction.orchestrator.core import state
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

pytestmark = pytest.mark.timeout(30)

SHIP = {"approved": True, "note": "go"}


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("WA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[OrchestratorServer]:
    await start_worker(AskingWorker)
    async with OrchestratorServer(registry.address, port=0, approval_required=["noop"]) as server:
        await server.orchestrator.wait_for_workers("review", timeout_seconds=5)
        yield server


async def wa(daemon: OrchestratorServer, *argv: str) -> int:
    """`wa ARGV... --orchestrator DAEMON` in this process; its exit code."""
    args = build_parser(Settings.load({})).parse_args([*argv, "--orchestrator", daemon.address])
    code: int = await args.run(args)
    return code


async def asking(daemon: OrchestratorServer, capability: str = "review", params: dict[str, Any] | None = None) -> str:
    """A task whose handler waits on its first question; its id."""
    handle = await daemon.orchestrator.execute_task(capability, {"item": "v2"} if params is None else params)
    await handle.input_requested(timeout_seconds=5)
    return handle.task_id


async def status_of(daemon: OrchestratorServer, task_id: str) -> TaskStatus:
    return (await daemon.orchestrator.task(task_id)).status


async def test_respond_shows_the_question_refuses_a_wrong_answer_and_takes_a_right_one(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task_id = await asking(daemon)
    assert await wa(daemon, "respond", task_id) == 0
    out = capsys.readouterr().out
    assert f"task {task_id} waits for an answer:" in out
    assert "question  input-1" in out and "prompt    Ship v2?" in out and "deadline  none" in out
    assert '"required":["approved"]' in out
    assert f"wa respond {task_id} --value JSON --request-id input-1" in out

    assert await wa(daemon, "respond", task_id, "--value", '{"approved": "yes"}') == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "the answer was refused (1 problem):" in captured.err
    assert "  - answer['approved']: expects boolean" in captured.err and "still waits" in captured.err
    assert await status_of(daemon, task_id) is TaskStatus.INPUT_REQUIRED

    (tmp_path / "answer.json").write_text(json.dumps(SHIP))
    assert await wa(daemon, "respond", task_id, "--value", "@answer.json") == 0
    assert capsys.readouterr().out == f'task {task_id}: answered input-1 with {{"approved":true,"note":"go"}}\n'
    handle = await daemon.orchestrator.watch(task_id)
    assert await handle.result(timeout_seconds=5) == {"item": "v2", "answer": SHIP}

    assert await wa(daemon, "respond", task_id) == 1
    assert capsys.readouterr().out == f"task {task_id} waits for no input (COMPLETED)\n"
    assert await wa(daemon, "respond", task_id, "--text", "late") == 1
    assert "waits for no input" in capsys.readouterr().err


async def test_text_stdin_and_request_id_answer_questions_in_turn(
    daemon: OrchestratorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    task_id = await asking(daemon, "twice", {})
    assert await wa(daemon, "respond", task_id, "--text", "a", "--request-id", "input-1") == 0
    assert capsys.readouterr().out == f'task {task_id}: answered input-1 with "a"\n'

    async def second_asked() -> bool:
        request = (await daemon.orchestrator.task(task_id)).input_request
        return request is not None and request.request_id != "input-1"

    await eventually(second_asked, what="the second question")
    # An answer meant for the first question does not answer the second.
    assert await wa(daemon, "respond", task_id, "--value", "1", "--request-id", "input-1") == 1
    assert "input-1" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(" 2\n"))
    assert await wa(daemon, "respond", task_id, "--value", "@-") == 0
    assert capsys.readouterr().out.endswith(" with 2\n")
    handle = await daemon.orchestrator.watch(task_id)
    assert await handle.result(timeout_seconds=5) == ["a", 2]


async def test_respond_usage_errors_and_an_unknown_task(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match=r"not JSON.*--text"):
        await wa(daemon, "respond", "some-task", "--value", "yes")
    with pytest.raises(UsageError, match=r"no such file missing\.json"):
        await wa(daemon, "respond", "some-task", "--value", "@missing.json")
    assert await wa(daemon, "respond", "no-such-task", "--value", "true") == 2
    assert "no task 'no-such-task' on the orchestrator" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["respond", "t", "--value", "1", "--text", "a"],
        ["respond"],
        ["deny", "t"],  # a denial says why
        ["approve"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: wa" in capsys.readouterr().err


def test_help_of_the_new_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("respond", "approve", "deny"))
    for command, words in (
        ("respond", ["--value", "--text", "--request-id", "@FILE", "exit codes", "example"]),
        ("approve", ["--reason", "APPROVAL_REQUIRED", "exit codes", "example"]),
        ("deny", ["--reason", "CANCELED", "exit codes", "example"]),
        ("submit", ["--stream", "--require-approval"]),
    ):
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert all(word in text for word in words), (command, text)


async def test_approve_lets_a_task_run_and_deny_cancels_one_with_its_reason(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    approved = await daemon.orchestrator.execute_task("noop", {})
    denied = await daemon.orchestrator.execute_task("noop", {})
    assert approved.status is TaskStatus.APPROVAL_REQUIRED

    assert await wa(daemon, "task", "list", "--status", "approval_required") == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert sorted(row.split()[0] for row in rows) == sorted([approved.task_id, denied.task_id])
    assert all(row.split()[2] == "APPROVAL_REQUIRED" and row.endswith("waits for approval") for row in rows)

    assert await wa(daemon, "approve", approved.task_id, "--reason", "ticket 1") == 0
    assert capsys.readouterr().out.startswith(f"task {approved.task_id}: approved (ticket 1); now ")
    assert await approved.result(timeout_seconds=5) == "ok"
    assert await wa(daemon, "deny", denied.task_id, "--reason", "not now") == 0
    assert capsys.readouterr().out == f"task {denied.task_id}: denied (not now); now CANCELED\n"
    final = await denied.wait(timeout_seconds=5)
    assert final.status is TaskStatus.CANCELED and "not now" in final.error_message

    assert await wa(daemon, "approve", denied.task_id) == 1
    assert "waits for no approval" in capsys.readouterr().err
    assert await wa(daemon, "deny", "no-such-task", "--reason", "x") == 2
    assert "no task 'no-such-task'" in capsys.readouterr().err

    assert await wa(daemon, "task", "get", approved.task_id) == 0
    facts = _facts(capsys.readouterr().out)
    assert facts["approval"].startswith("approved by - at ") and facts["approval"].endswith(": ticket 1")
    assert await wa(daemon, "task", "get", denied.task_id, "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "CANCELED" and document["approval_required"] is True
    assert document["approval"]["approved"] is False and document["approval"]["reason"] == "not now"
    assert document["approval"]["decided_at"].endswith("+00:00") and document["inputs"] == []


async def test_task_get_and_list_show_questions_answers_and_who_answered(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    task_id = await asking(daemon)
    assert await wa(daemon, "task", "list", "--status", "INPUT_required") == 0
    [row] = capsys.readouterr().out.splitlines()[1:]
    assert row.split()[:3] == [task_id, "review", "INPUT_REQUIRED"] and row.endswith("asks: Ship v2?")

    assert await wa(daemon, "task", "get", task_id) == 0
    out = capsys.readouterr().out
    assert _facts(out)["status"] == "INPUT_REQUIRED" and "approval" not in _facts(out)
    block = out[out.index("questions (1):") :].splitlines()
    assert block[1].startswith("  input-1  asked ") and block[1].endswith(", attempt 1")
    assert block[2] == "    prompt    Ship v2?"
    assert block[-1] == "    answer    none yet: the task waits for it (wa respond)"

    await daemon.orchestrator.provide_input(task_id, SHIP)
    await (await daemon.orchestrator.watch(task_id)).wait(timeout_seconds=5)
    assert await wa(daemon, "task", "get", task_id) == 0
    answer = capsys.readouterr().out.splitlines()[-1]
    assert answer.startswith('    answer    {"approved":true,"note":"go"}  by - at ') and answer.endswith("Z")
    assert await wa(daemon, "task", "get", task_id, "--json") == 0
    [exchange] = json.loads(capsys.readouterr().out)["inputs"]
    assert exchange["request"]["prompt"] == "Ship v2?" and exchange["request"]["schema"]["required"] == ["approved"]
    assert exchange["answer"]["value"] == SHIP and exchange["answer"]["answered_by"] == ""
    assert exchange["attempt"] == 1 and exchange["asked_at"] <= exchange["answer"]["answered_at"]


async def test_submit_stream_prints_text_as_it_is_and_json_one_per_line(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa(daemon, "submit", "tokens", "-p", "count=5", "-p", "size=2", "--stream") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("task ")
    assert "0001020304" in lines and lines.index("0001020304") < lines.index("COMPLETED")
    assert lines[-1] == "5" and lines.count("RUNNING") == 1

    assert await wa(daemon, "submit", "rows", "-p", "count=3", "--stream") == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("{")]
    assert rows == ['{"row":0}', '{"row":1}', '{"row":2}']
    assert lines.index(rows[-1]) < lines.index("COMPLETED") and lines[-1] == '"done"'

    assert await wa(daemon, "submit", "rows", "-p", "count=2", "--stream", "--json") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    chunks = [e for e in events if e["event"] == "chunk"]
    assert [(c["index"], c["data"], c["last"]) for c in chunks] == [(1, {"row": 0}, False), (2, {"row": 1}, True)]
    assert events[-1]["event"] == "result" and events[-1]["output"] == "done"
    assert sum(e["event"] == "update" and e["status"] == "RUNNING" for e in events) == 1

    # Without --stream the chunks are not printed, nor a RUNNING line for each.
    assert await wa(daemon, "submit", "tokens", "-p", "count=50", "-p", "size=3") == 0
    out = capsys.readouterr().out
    assert "000001" not in out and out.splitlines().count("RUNNING") == 1


async def test_submit_require_approval_and_flags_that_do_not_go_together(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa(daemon, "submit", "tokens", "-p", "count=1", "--require-approval", "--detach") == 0
    task_id = capsys.readouterr().out.strip()
    assert await status_of(daemon, task_id) is TaskStatus.APPROVAL_REQUIRED
    with pytest.raises(UsageError, match="--stream"):
        await wa(daemon, "submit", "tokens", "-p", "count=1", "--stream", "--detach")
    args = build_parser(Settings.load({})).parse_args(["submit", "noop", "--require-approval"])
    with pytest.raises(UsageError, match="--require-approval needs an orchestrator daemon"):
        await args.run(args)


def test_the_chunk_printer_ends_open_lines_and_names_dropped_chunks(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    printer = ChunkPrinter(json_output=False, out=out)

    def chunk(index: int, **fields: Any) -> TaskUpdate:
        return TaskUpdate("t1", TaskStatus.RUNNING, chunk=OutputChunk(index, **fields))

    printer.take(chunk(1, text="Hello, "))
    printer.take(chunk(2, text="world"))
    printer.take(chunk(2, text="world"))  # a replay: printed once
    printer.take(TaskUpdate("t1", TaskStatus.RUNNING, metadata={DROPPED: "chunk"}))
    printer.take(chunk(5, data_json='{ "a" : [1, 2] }'))
    printer.take(chunk(6, text="done\n"))
    printer.end_line()  # (nothing open)
    assert out.getvalue() == 'Hello, world\n{"a":[1,2]}\ndone\n'
    assert "chunks 3 to 4 of task t1 were dropped" in capsys.readouterr().err


def test_status_lines_skip_chunks_and_show_the_question() -> None:
    # The CLI keeps its own copy of the mark's key: it must not import the engine to print a line.
    assert DROPPED == state.DROPPED
    assert is_output(TaskUpdate("t", TaskStatus.RUNNING, chunk=OutputChunk(1, text="x")))
    assert not is_output(TaskUpdate("t", TaskStatus.RUNNING, progress=0.5))
    asking = TaskUpdate("t", TaskStatus.INPUT_REQUIRED, input_request=InputRequest("input-1", "Ship it?\nreally?"))
    assert status_line(asking) == "INPUT_REQUIRED (Ship it?)"
    assert status_line(TaskUpdate("t", TaskStatus.APPROVAL_REQUIRED)) == "APPROVAL_REQUIRED"


def _facts(out: str) -> dict[str, str]:
    """The `key  value` lines of `wa task get` (before the attempts)."""
    lines = out[: out.index("attempts")].splitlines()
    return {line[:15].strip(): line[15:].strip() for line in lines}
