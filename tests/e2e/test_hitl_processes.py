"""Human in the loop as a user runs it: real `wa registry`, `wa worker tests.hitl.workers:AskingWorker` and
`wa orchestrator` processes, `wa submit` following a task in one process while `wa respond`, `wa approve` and
`wa deny` act on it from others, each checked by its output and exit code as a shell would see them."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from processes import FAST_REGISTRY, FAST_WORKER, HERE, REPO, Daemon, Result, Start, env, wa

from tests.conftest import eventually
from worker_abstraction import RemoteOrchestrator

pytestmark = pytest.mark.timeout(120)

WAIT_SECONDS = 30.0


class Following:
    """A `wa` command that runs a while (`wa submit` following its task): its stdout read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def line_with(self, text: str) -> str:
        """The first stdout line, from the one after the last read, that contains `text`."""
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                raw = await self.process.stdout.readline()
                assert raw, f"stdout ended before a line with {text!r}: {self.lines}"
                self.lines.append(raw.decode().rstrip("\n"))
                if text in self.lines[-1]:
                    return self.lines[-1]

    async def ended(self) -> Result:
        """Its exit code, and the stdout lines not read yet, and its stderr."""
        async with asyncio.timeout(WAIT_SECONDS):
            out, err = await self.process.communicate()
        assert self.process.returncode is not None
        return Result(self.process.returncode, out.decode(), err.decode())


@pytest.fixture
async def follow() -> AsyncIterator[Callable[..., Any]]:
    """Starts `wa ARGS...` with its stdout piped to the test; kills what is still running at teardown."""
    started: list[asyncio.subprocess.Process] = []

    async def _follow(*args: str) -> Following:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker_abstraction.cli", *args,
            cwd=HERE, env=env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        started.append(process)
        return Following(process)

    yield _follow
    for process in started:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def cluster(start: Start, *daemon_flags: str) -> Daemon:
    """A registry, the asking worker and an orchestrator daemon (with `daemon_flags`); the daemon."""
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start("worker", "tests.hitl.workers:AskingWorker", "--port", "0", "--registry", registry.address,
                *FAST_WORKER, cwd=REPO)  # fmt: skip
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address, *daemon_flags)
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("review", timeout_seconds=WAIT_SECONDS)
    return daemon


async def task_json(daemon: Daemon, task_id: str) -> dict[str, Any]:
    got = await wa("task", "get", task_id, "--json", "--orchestrator", daemon.address)
    assert got.code == 0, got.err
    document: dict[str, Any] = json.loads(got.out)
    return document


async def test_a_wrong_answer_is_refused_and_the_task_waits_then_a_right_one_completes_it(
    start: Start, follow: Callable[..., Any]
) -> None:
    daemon = await cluster(start)
    at = ("--orchestrator", daemon.address)
    submit: Following = await follow("submit", "review", "-p", "item=v2", *at)
    task_id = (await submit.line_with("task ")).split()[1]
    assert await submit.line_with("INPUT_REQUIRED") == "INPUT_REQUIRED (Ship v2?)"

    shown = await wa("respond", task_id, *at)
    assert shown.code == 0, shown.err
    assert "prompt    Ship v2?" in shown.out and "question  input-1" in shown.out

    refused = await wa("respond", task_id, "--value", '{"approved": "yes"}', *at)
    assert refused.code == 2 and refused.out == ""
    assert "refused (1 problem)" in refused.err and "  - answer['approved']: expects boolean" in refused.err
    listed = await wa("task", "list", "--status", "input_required", *at)
    assert listed.code == 0 and [row.split()[:3] for row in listed.out.splitlines()[1:]] == [
        [task_id, "review", "INPUT_REQUIRED"]
    ]

    answered = await wa("respond", task_id, "--value", '{"approved": true, "note": "go"}', *at)
    assert answered.code == 0, answered.err
    assert answered.out == f'task {task_id}: answered input-1 with {{"approved":true,"note":"go"}}\n'
    result = await submit.ended()
    assert result.code == 0, result.err
    assert json.loads(result.out[result.out.index("{") :]) == {
        "item": "v2", "answer": {"approved": True, "note": "go"}
    }  # fmt: skip
    assert result.out.splitlines().count("COMPLETED") == 1

    [exchange] = (await task_json(daemon, task_id))["inputs"]
    assert exchange["answer"]["value"] == {"approved": True, "note": "go"}
    again = await wa("respond", task_id, "--text", "late", *at)
    assert again.code == 1 and "waits for no input" in again.err


async def test_approve_lets_a_task_run_and_deny_ends_one_canceled_with_the_reason(
    start: Start, follow: Callable[..., Any]
) -> None:
    daemon = await cluster(start, "--require-approval", "noop")
    at = ("--orchestrator", daemon.address)
    submit: Following = await follow("submit", "noop", *at)
    approved = (await submit.line_with("task ")).split()[1]
    await submit.line_with("APPROVAL_REQUIRED")
    detached = await wa("submit", "noop", "--detach", *at)
    assert detached.code == 0, detached.err
    denied = detached.out.strip()

    async def waits_for_approval() -> bool:
        return (await task_json(daemon, denied))["status"] == "APPROVAL_REQUIRED"

    await eventually(waits_for_approval, timeout_seconds=WAIT_SECONDS, what="the detached task waits for approval")

    said = await wa("approve", approved, "--reason", "ticket 4711", *at)
    assert said.code == 0, said.err
    assert said.out.startswith(f"task {approved}: approved (ticket 4711); now ")
    result = await submit.ended()
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == '"ok"'

    said = await wa("deny", denied, "--reason", "not during the freeze", *at)
    assert (said.code, said.out) == (0, f"task {denied}: denied (not during the freeze); now CANCELED\n"), said.err
    record = await task_json(daemon, denied)
    assert record["status"] == "CANCELED" and "not during the freeze" in record["error_message"]
    assert record["approval"]["approved"] is False and record["approval"]["reason"] == "not during the freeze"
    assert record["attempts"] == []  # it never ran
    shown = await wa("task", "get", denied, *at)
    assert "approval         denied by - at " in shown.out and shown.out.count("not during the freeze") >= 1

    late = await wa("approve", denied, *at)
    assert late.code == 1 and "waits for no approval" in late.err


async def test_submit_stream_prints_every_chunk_in_order_then_the_result(start: Start) -> None:
    daemon = await cluster(start)
    expected = "".join(f"{i:04d}" for i in range(300))
    streamed = await wa("submit", "tokens", "-p", "count=300", "-p", "size=4", "--stream",
                        "--orchestrator", daemon.address)  # fmt: skip
    assert streamed.code == 0, streamed.err
    lines = streamed.out.splitlines()
    assert expected in lines  # every chunk, in order, with no newline between them
    assert lines.index(expected) < lines.index("COMPLETED") and lines[-1] == "300"

    rows = await wa("submit", "rows", "-p", "count=3", "--stream", "--json", "--orchestrator", daemon.address)
    assert rows.code == 0, rows.err
    events = [json.loads(line) for line in rows.out.splitlines()]
    assert [e["data"] for e in events if e["event"] == "chunk"] == [{"row": 0}, {"row": 1}, {"row": 2}]
    assert events[-1]["output"] == "done"
