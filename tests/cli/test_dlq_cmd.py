"""`wa dlq` in-process against a real registry, worker and orchestrator daemon on 127.0.0.1:0; and the one
wording every command uses for a daemon it cannot reach.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from worker_abstraction import RegistryServer, RetryPolicy
from worker_abstraction.cli.main import build_parser
from worker_abstraction.errors import TaskFailedError
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

pytestmark = pytest.mark.timeout(30)

POLICY = RetryPolicy(max_attempts=2, initial_backoff_seconds=0.01, retry_task_errors=True)


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[OrchestratorServer]:
    await start_worker()
    # keep_finished=2: the daemon forgets all but its latest two finished tasks (a dead letter stays).
    async with OrchestratorServer(registry.address, port=0, keep_finished=2) as server:
        await server.orchestrator.wait_for_workers("explode", timeout_seconds=5)
        yield server


async def dead_letter(daemon: OrchestratorServer, message: str) -> str:
    handle = await daemon.orchestrator.execute_task("explode", {"message": message}, retry_policy=POLICY)
    with pytest.raises(TaskFailedError):
        await handle.result(timeout_seconds=10)
    return handle.task_id


async def wa(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    code: int = await args.run(args)
    return code


async def test_dlq_list_json_is_in_the_form_of_task_get_json(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    task_id = await dead_letter(daemon, "twice")
    assert await wa("dlq", "list", "--json", "--orchestrator", daemon.address) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert await wa("task", "get", task_id, "--json", "--orchestrator", daemon.address) == 0
    assert listed == json.loads(capsys.readouterr().out)
    assert (listed["status"], listed["dead_lettered"], listed["error_message"]) == ("FAILED", True, "ValueError: twice")
    assert [a["status"] for a in listed["attempts"]] == ["FAILED", "FAILED"]
    assert listed["attempts"][0]["started_at"].endswith("+00:00") and listed["submitted_at"].endswith("+00:00")


async def test_dlq_list_json_of_a_task_the_daemon_forgot_keeps_the_same_keys(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    forgotten = await dead_letter(daemon, "old")
    for _ in range(3):  # pushes the first task out of the daemon's two remembered finished tasks
        await (await daemon.orchestrator.execute_task("echo", {"text": "x"})).wait(timeout_seconds=10)
    assert await wa("task", "get", forgotten, "--orchestrator", daemon.address) == 1
    capsys.readouterr()
    assert await wa("dlq", "list", "--json", "--orchestrator", daemon.address) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["task_id"] == forgotten and listed["status"] == "FAILED" and listed["dead_lettered"] is True
    assert listed["error_message"] == "ValueError: old" and listed["params"] == {"message": "old"}
    assert [a["status"] for a in listed["attempts"]] == ["FAILED", "FAILED"]
    assert listed.keys() == {
        "task_id", "capability", "status", "params", "output", "error_message", "worker_id", "submitted_at",
        "attempts", "dead_lettered", "cancel_reason", "idempotency_key", "owner", "not_before", "expires_at",
        "inputs", "approval", "approval_required",
    }  # fmt: skip


async def test_dlq_purge_of_an_unknown_id_purges_nothing_and_exits_1(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = await dead_letter(daemon, "kept")
    gone = await dead_letter(daemon, "gone")
    capsys.readouterr()  # (the workers' lines about the failures, once an earlier test set up logging)
    assert await wa("dlq", "purge", "nope", "--orchestrator", daemon.address) == 1
    captured = capsys.readouterr()
    assert captured.out == "purged 0\n"
    assert captured.err == f"no dead letter 'nope' on the orchestrator at {daemon.address}\n"
    assert {letter.task_id for letter in await daemon.orchestrator.dead_letters()} == {kept, gone}

    assert await wa("dlq", "purge", gone, "nope", "--orchestrator", daemon.address) == 1  # one of two
    assert capsys.readouterr().out == "purged 1\n"
    assert [letter.task_id for letter in await daemon.orchestrator.dead_letters()] == [kept]

    assert await wa("dlq", "purge", kept, "--orchestrator", daemon.address) == 0
    assert capsys.readouterr().out == "purged 1\n"
    assert await daemon.orchestrator.dead_letters() == []


def dead_address() -> str:
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["task", "get", "x"], 1),
        (["task", "list"], 1),
        (["task", "watch", "x"], 1),
        (["cancel", "x"], 2),
        (["queue"], 1),
        (["top", "--once"], 1),
        (["dlq", "list"], 2),
        (["dlq", "purge", "x"], 2),
        (["dlq", "requeue", "x"], 2),
        (["workers"], 1),
    ],
)
async def test_an_unreachable_orchestrator_is_named_in_one_wording(
    argv: list[str], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    address = dead_address()
    assert await wa(*argv, "--orchestrator", address) == code
    captured = capsys.readouterr()
    assert captured.err.startswith(f"cannot reach the orchestrator at {address}: UNAVAILABLE"), captured.err
    assert captured.out == ""


async def test_an_unreachable_registry_is_named_in_the_same_wording(capsys: pytest.CaptureFixture[str]) -> None:
    address = dead_address()
    assert await wa("workers", "--registry", address) == 1
    assert capsys.readouterr().err.startswith(f"cannot reach the registry at {address}: ")
