"""`wa task get|list|watch` in-process against a real registry, worker and orchestrator daemon on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import Gates, eventually
from worker_abstraction import RegistryServer
from worker_abstraction.cli.main import build_parser
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[OrchestratorServer]:
    await start_worker()
    async with OrchestratorServer(registry.address, port=0) as server:
        await server.orchestrator.wait_for_workers("echo", timeout_seconds=5)
        yield server


async def finished(daemon: OrchestratorServer, capability: str, **params: Any) -> str:
    """Run a task on the daemon to its end; its id."""
    handle = await daemon.orchestrator.execute_task(capability, params)
    await handle.wait(timeout_seconds=10)
    return handle.task_id


async def wa_task(daemon: OrchestratorServer, *argv: str) -> int:
    args = build_parser().parse_args(["task", *argv, "--orchestrator", daemon.address])
    code: int = await args.run(args)
    return code


async def test_get_a_completed_task(daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]) -> None:
    task_id = await finished(daemon, "echo", text="hi", times=2)
    assert await wa_task(daemon, "get", task_id) == 0
    lines = capsys.readouterr().out.splitlines()
    facts = {line[:15].strip(): line[15:].strip() for line in lines if not line.startswith(("attempts", " "))}
    assert facts["task"] == task_id and facts["capability"] == "echo" and facts["status"] == "COMPLETED"
    assert facts["output"] == '{"text": "hihi"}'
    assert facts["dead-lettered"] == "no" and facts["cancel reason"] == "-" and facts["idempotency key"] == "-"
    assert "error" not in facts
    [attempt] = [line.split() for line in lines if line.startswith("  #")]
    assert attempt[0] == "#1" and attempt[1] == facts["worker"] and attempt[-1] == "COMPLETED"

    assert await wa_task(daemon, "get", task_id, "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "COMPLETED" and document["output"] == {"text": "hihi"}
    assert document["params"] == {"text": "hi", "times": 2} and document["error_message"] == ""
    [first] = document["attempts"]
    assert first["number"] == 1 and first["status"] == "COMPLETED" and first["worker_id"] == document["worker_id"]
    assert first["started_at"] <= first["ended_at"] and first["started_at"].endswith("+00:00")
    assert document["submitted_at"].endswith("+00:00")


async def test_get_a_failed_task(daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]) -> None:
    task_id = await finished(daemon, "explode", message="kaput")
    assert await wa_task(daemon, "get", task_id) == 0
    out = capsys.readouterr().out
    assert "status           FAILED" in out and "error            ValueError: kaput" in out
    assert "output" not in out
    [attempt] = [line for line in out.splitlines() if line.startswith("  #")]
    assert attempt.rstrip().endswith("FAILED  ValueError: kaput")

    assert await wa_task(daemon, "get", task_id, "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["status"], document["output"]) == ("FAILED", None)
    assert document["error_message"] == "ValueError: kaput"
    assert document["attempts"][0]["error_message"] == "ValueError: kaput"


async def test_list_filters_by_status_and_limits_newest_first(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    done = [await finished(daemon, "echo", text=str(i)) for i in range(3)]
    failed = await finished(daemon, "explode")

    assert await wa_task(daemon, "list") == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "CAPABILITY", "STATUS", "ATTEMPTS", "WORKER", "SUBMITTED", "RESULT"]
    assert [row.split()[0] for row in rows] == [failed, *reversed(done)]
    assert rows[0].split()[1:4] == ["explode", "FAILED", "1"] and rows[0].endswith("ValueError: boom")
    assert rows[1].endswith('{"text":"2"}')

    assert await wa_task(daemon, "list", "--status", "Failed") == 0
    [row] = capsys.readouterr().out.splitlines()[1:]
    assert row.split()[0] == failed

    assert await wa_task(daemon, "list", "--status", "completed", "--limit", "2") == 0
    captured = capsys.readouterr()
    assert [row.split()[0] for row in captured.out.splitlines()[1:]] == [done[2], done[1]]
    assert "--all" in captured.err  # more are there

    assert await wa_task(daemon, "list", "--status", "completed", "failed", "--all", "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    assert [t["task_id"] for t in listing] == [failed, *reversed(done)]
    assert listing[1]["output"] == {"text": "2"}

    assert await wa_task(daemon, "list", "--status", "canceled", "--capability", "echo") == 0
    assert capsys.readouterr().out.splitlines()[1:] == []


async def test_list_filters_by_worker_time_and_id_prefix(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    early = await finished(daemon, "echo", text="early")
    middle = datetime.now(UTC).isoformat()
    late = await finished(daemon, "explode")
    [worker] = await daemon.orchestrator.workers()

    async def listed(*argv: str) -> list[str]:
        assert await wa_task(daemon, "list", *argv) == 0
        return [row.split()[0] for row in capsys.readouterr().out.splitlines()[1:]]

    assert await listed("--worker", worker.worker_id) == [late, early]
    assert await listed("--worker", "someone-else") == []
    assert await listed("--since", middle) == [late]
    assert await listed("--until", middle) == [early]
    assert await listed("--since", "1h", "--status", "failed") == [late]
    assert await listed("--until", "1h") == []
    assert await listed("--id", late[:20]) == [late]

    assert await wa_task(daemon, "list", "--since", middle, "--until", "2000-01-01") == 2
    assert "--since is after --until" in capsys.readouterr().err


@pytest.mark.parametrize("when", ["yesterday", "15x", "2024-13-01"])
def test_a_malformed_time_is_a_usage_error(when: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["task", "list", "--since", when])
    assert exit_.value.code == 2
    assert "ISO 8601" in capsys.readouterr().err


async def test_watch_follows_a_task_to_completion(
    daemon: OrchestratorServer, gates: Gates, capsys: pytest.CaptureFixture[str]
) -> None:
    handle = await daemon.orchestrator.execute_task("wait_for", {"name": "go"})
    watching = asyncio.create_task(wa_task(daemon, "watch", handle.task_id))
    out: list[str] = []

    def printed(text: str) -> bool:
        out.append(capsys.readouterr().out)
        return text in "".join(out)

    await eventually(lambda: printed("RUNNING"), what="watch prints RUNNING while the task waits")
    gates.open("go")
    assert await watching == 0
    out.append(capsys.readouterr().out)
    lines = "".join(out).splitlines()
    assert lines[0] == f"task {handle.task_id} (wait_for)"
    assert lines[-2].startswith("COMPLETED  (attempt 1, worker ")
    assert json.loads(lines[-1]) == "go"


async def test_watch_of_a_failing_task_exits_1(daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]) -> None:
    task_id = await finished(daemon, "explode", message="kaput")
    assert await wa_task(daemon, "watch", task_id) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].startswith("FAILED")
    assert "ValueError: kaput" in captured.err


@pytest.mark.parametrize("action", ["get", "watch"])
async def test_an_unknown_task_exits_1_with_a_message(
    daemon: OrchestratorServer, action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa_task(daemon, action, "nope") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"no task 'nope' on the orchestrator at {daemon.address}"


async def test_an_unreachable_daemon_exits_1_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    for argv in (["get", "x"], ["list"], ["watch", "x"]):
        args = build_parser().parse_args(["task", *argv, "--orchestrator", address])
        assert await args.run(args) == 1
        assert capsys.readouterr().err.startswith(f"cannot reach the orchestrator at {address}")


def test_an_unknown_status_is_a_usage_error_naming_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["task", "list", "--status", "done"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown status 'done'" in err and "pending, running, completed, failed, canceled" in err
