"""`wa submit` in-process against a real registry, worker and orchestrator daemon on 127.0.0.1:0: the daemon
when one is configured, --json, --detach, the task options, parameters from files and stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_dlq_cmd import dead_address
from tests.conftest import Gates, eventually
from worker_abstraction import CapabilitySpec, RegistryClient, RegistryServer, TaskStatus, WorkerInfo
from worker_abstraction.cli.config import SETTINGS, Settings
from worker_abstraction.cli.main import build_parser, main
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("WA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[OrchestratorServer]:
    await start_worker(max_concurrent_tasks=1)
    async with OrchestratorServer(registry.address, port=0) as server:
        await server.orchestrator.wait_for_workers("echo", timeout_seconds=5)
        yield server


async def submit(*argv: str, settings: Settings | None = None) -> int:
    args = build_parser(settings or Settings.load({})).parse_args(["submit", *argv])
    async with asyncio.timeout(20):
        code: int = await args.run(args)
    return code


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


async def test_a_configured_daemon_is_used_and_json_prints_one_object_per_update_then_the_result(
    daemon: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wa.toml").write_text(f'orchestrator = "{daemon.address}"\n')
    assert await submit("echo", "-p", "text=hi", "-p", "times=2", "--json") == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no word about an in-process orchestrator
    submitted, *updates, result = json_lines(captured.out)
    task_id = submitted["task_id"]
    assert submitted == {
        "event": "submitted", "task_id": task_id, "worker_id": submitted["worker_id"],
        "worker_address": submitted["worker_address"], "orchestrator": daemon.address,
    }  # fmt: skip
    assert result == {"event": "result", "task_id": task_id, "status": "COMPLETED", "output": {"text": "hihi"}}
    assert [u["status"] for u in updates][-1] == "COMPLETED"
    assert all(u["event"] == "update" and u["task_id"] == task_id for u in updates)
    running = next(u for u in updates if u["progress_message"] == "halfway")
    assert (running["status"], running["progress"], running["attempt"]) == ("RUNNING", 0.5, 1)
    assert running["worker_id"] == submitted["worker_id"] and running["timestamp"].endswith("+00:00")
    assert [u["sequence"] for u in updates] == sorted(u["sequence"] for u in updates)
    assert "failure" not in updates[-1]
    assert (await daemon.orchestrator.task(task_id)).status is TaskStatus.COMPLETED  # the daemon ran it


async def test_json_of_a_failed_task_has_the_failure_and_the_error(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await submit("explode", "-p", "message=kaput", "--json", "--orchestrator", daemon.address) == 1
    *_, last, result = json_lines(capsys.readouterr().out)
    assert last["status"] == "FAILED" and last["error_message"] == "ValueError: kaput"
    assert last["failure"] == {"type": "ValueError", "message": "kaput", "retryable": True, "origin": "HANDLER"}
    assert result["event"] == "result" and result["status"] == "FAILED" and "output" not in result
    assert result["error"]["type"] == "TaskFailedError" and "kaput" in result["error"]["message"]


async def test_in_process_it_says_so_on_stderr_and_a_refusal_exits_2(
    registry: RegistryServer, start_worker: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    worker = await start_worker()
    assert await submit("echo", "-p", "text=x", "--registry", registry.address) == 0
    err = capsys.readouterr().err
    assert err == f"no orchestrator daemon configured: running one in this process (registry {registry.address})\n"

    # A registration that claims a capability the process behind the address does not serve: it refuses.
    client = RegistryClient(registry.address)
    ghost = CapabilitySpec(name="ghost")
    await client.register(
        WorkerInfo(worker_id="impostor", name="impostor", address=worker.address.replace("127.0.0.1", "localhost"),
                   capabilities=(ghost,))
    )  # fmt: skip
    try:
        assert await submit("ghost", "--json", "--registry", registry.address) == 2
    finally:
        await client.aclose()
    captured = capsys.readouterr()
    result = json_lines(captured.out)[-1]
    assert result["event"] == "result" and result["error"]["type"] == "TaskRejectedError"
    assert "TaskRejectedError" in captured.err


async def test_an_unreachable_registry_or_daemon_is_not_run_in_the_one_wording(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await submit("echo", "--registry", "127.0.0.1:1", "--json") == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1].startswith("cannot reach the registry at 127.0.0.1:1: ")
    assert json_lines(captured.out) == [
        {"event": "result", "task_id": None, "status": None, "error": json_lines(captured.out)[0]["error"]}
    ]
    assert await submit("echo", "--orchestrator", "127.0.0.1:1") == 2
    assert capsys.readouterr().err.startswith("cannot reach the orchestrator at 127.0.0.1:1: UNAVAILABLE")


async def test_detach_prints_the_task_id_alone_and_leaves_the_task_running(
    daemon: OrchestratorServer, gates: Gates, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await submit("wait_for", "-p", "name=later", "--detach", "--orchestrator", daemon.address) == 0
    out = capsys.readouterr().out
    [task_id] = out.split()
    assert out == f"{task_id}\n"  # alone on stdout: `ID=$(wa submit ... --detach)` works
    record = await daemon.orchestrator.task(task_id)
    assert record.status in (TaskStatus.PENDING, TaskStatus.RUNNING)
    gates.open("later")
    handle = await daemon.orchestrator.watch(task_id)
    assert await handle.result(timeout_seconds=10) == "later"

    assert await submit("echo", "-p", "text=x", "--detach", "--json", "--orchestrator", daemon.address) == 0
    [submitted] = json_lines(capsys.readouterr().out)
    assert submitted["event"] == "submitted" and submitted["orchestrator"] == daemon.address


async def test_the_idempotency_key_gives_the_first_task_again(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("echo", "-p", "text=once", "--idempotency-key", "k-1", "--json", "--orchestrator", daemon.address)
    assert await submit(*argv) == 0
    first = json_lines(capsys.readouterr().out)[0]["task_id"]
    assert await submit(*argv) == 0
    assert json_lines(capsys.readouterr().out)[0]["task_id"] == first
    assert (await daemon.orchestrator.task(first)).idempotency_key == "k-1"


async def test_retries_and_retry_task_errors_try_a_failing_task_again(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("explode", "--json", "--orchestrator", daemon.address)
    assert await submit(*argv, "--retries", "2", "--retry-task-errors") == 1
    task_id = json_lines(capsys.readouterr().out)[0]["task_id"]
    assert len((await daemon.orchestrator.task(task_id)).attempts) == 3
    assert await submit(*argv, "--retries", "2") == 1  # a task error alone is not retried
    task_id = json_lines(capsys.readouterr().out)[0]["task_id"]
    assert len((await daemon.orchestrator.task(task_id)).attempts) == 1


async def test_queue_timeout_fails_a_task_no_worker_takes_in_time(
    daemon: OrchestratorServer, gates: Gates, capsys: pytest.CaptureFixture[str]
) -> None:
    busy = await daemon.orchestrator.execute_task("wait_for", {"name": "busy"})  # the worker's one slot
    await eventually(lambda: busy.status is TaskStatus.RUNNING, what="the slot is taken")
    try:
        assert await submit("echo", "-p", "text=x", "--queue-timeout", "0.2", "--orchestrator", daemon.address) == 1
    finally:
        gates.open("busy")
    captured = capsys.readouterr()
    assert "queued" in captured.out.splitlines()[0] and "TaskTimeoutError" in captured.err


async def test_params_from_a_file_and_from_stdin(
    daemon: OrchestratorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "text.txt").write_text("line one\nline two\n")
    (tmp_path / "times.json").write_text("2\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin"))
    argv = ("-p", "text=@text.txt", "-p", "times=@times.json", "--json", "--orchestrator", daemon.address)
    assert await submit("echo", *argv) == 0
    assert json_lines(capsys.readouterr().out)[-1]["output"] == {"text": "line one\nline two\n" * 2}
    assert await submit("echo", "-p", "text=@-", "--json", "--orchestrator", daemon.address) == 0
    assert json_lines(capsys.readouterr().out)[-1]["output"] == {"text": "from stdin"}


async def test_submit_runs_in_a_thread_where_no_signal_can_be_caught(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        argv = ["submit", "echo", "-p", "text=x", "--json", "--orchestrator", daemon.address]
        assert await asyncio.to_thread(main, argv) == 0
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert json_lines(capsys.readouterr().out)[-1]["output"] == {"text": "x"}


async def test_in_process_a_capability_only_unreachable_workers_offer_is_not_run_and_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with RegistryServer(port=0, ttl_seconds=60) as registry:  # (the registration outlives the wait)
        client = RegistryClient(registry.address)
        try:
            await client.register(WorkerInfo("gone", "Gone", dead_address(), capabilities=(CapabilitySpec("vanish"),)))
            assert await submit("vanish", "--registry", registry.address, "--wait", "1") == 2
        finally:
            await client.aclose()
    err = capsys.readouterr().err
    assert "NoWorkerError" in err and "none of the workers offering it can take it now" in err and "gone at" in err


async def test_through_a_daemon_a_queued_task_says_why_no_worker_takes_it(
    registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client = RegistryClient(registry.address)
    printed: list[str] = []
    try:
        await client.register(WorkerInfo("gone", "Gone", dead_address(), capabilities=(CapabilitySpec("vanish"),)))
        async with OrchestratorServer(registry.address, port=0) as server:

            async def probed() -> bool:
                return any(h.state_reason for h in await server.orchestrator.worker_health())

            await eventually(probed, what="the dead worker's first probe fails")
            following = asyncio.ensure_future(submit("vanish", "--orchestrator", server.address))

            def queued_line() -> bool:
                printed.append(capsys.readouterr().out)
                return "queued" in "".join(printed)

            try:
                await eventually(queued_line, what="the queued line")
            finally:
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await following
    finally:
        await client.aclose()
    line = next(line for line in "".join(printed).splitlines() if "queued" in line)
    assert "no worker offering it can take it now (gone at" in line, line


async def test_delay_and_at_submit_a_delayed_task_that_task_get_shows_waiting_until_its_time(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await submit("echo", "-p", "text=later", "--delay", "5m", "--detach", "--orchestrator", daemon.address) == 0
    task_id = capsys.readouterr().out.strip()
    record = await daemon.orchestrator.task(task_id)
    assert record.status is TaskStatus.PENDING and record.not_before is not None
    assert 295 < (record.not_before - datetime.now(UTC)).total_seconds() <= 300
    args = build_parser(Settings.load({})).parse_args(["task", "get", task_id, "--orchestrator", daemon.address])
    assert await args.run(args) == 0
    shown = capsys.readouterr().out
    assert "PENDING" in shown and "not before" in shown and "(in 5m)" in shown

    at = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()
    assert await submit("echo", "-p", "text=soon", "--at", at, "--json", "--orchestrator", daemon.address) == 0
    assert json_lines(capsys.readouterr().out)[-1]["output"] == {"text": "soon"}
    for flag, value, says in (("--delay", "soon", "not a duration"), ("--at", "tomorrow", "ISO 8601")):
        with pytest.raises(SystemExit):
            await submit("echo", flag, value)
        assert says in capsys.readouterr().err
