"""`wa top`: one snapshot in-process against a real registry, worker and orchestrator daemon on 127.0.0.1:0,
and the rendering of fixed data as plain text and on a terminal.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from tests.conftest import Gates, eventually
from worker_abstraction import CapabilitySpec, RegistryServer, TaskStatus, TaskUpdate, WorkerInfo
from worker_abstraction.cli.main import build_parser
from worker_abstraction.cli.top_view import Snapshot, render, render_text
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.types import Attempt, TaskRecord, WorkerHealth, WorkerState

pytestmark = pytest.mark.timeout(30)

ESC = "\x1b"  # the start of every ANSI control sequence


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[OrchestratorServer]:
    await start_worker(max_concurrent_tasks=1)
    async with OrchestratorServer(registry.address, port=0) as server:
        await server.orchestrator.wait_for_workers("echo", timeout_seconds=5)
        yield server


async def wa(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    code: int = await args.run(args)
    return code


def section(out: str, title: str) -> list[str]:
    """The lines of one section of a plain snapshot, its title line first, up to the blank line after it."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


async def test_once_prints_the_worker_the_queue_and_a_finished_task(
    daemon: OrchestratorServer, gates: Gates, capsys: pytest.CaptureFixture[str]
) -> None:
    finished = await daemon.orchestrator.execute_task("echo", {"text": "hi"})
    await finished.wait(timeout_seconds=10)
    busy = await daemon.orchestrator.execute_task("wait_for", {"name": "busy"})  # the worker's one slot
    await eventually(lambda: busy.status is TaskStatus.RUNNING, what="the slot is taken")
    waiting = await daemon.orchestrator.execute_task("wait_for", {"name": "later"}, priority=3)
    try:

        async def queued() -> bool:
            return await daemon.orchestrator.queue_depths() == {"wait_for": {3: 1}}

        await eventually(queued, what="the second task waits")
        assert await wa("top", "--once", "--orchestrator", daemon.address) == 0
    finally:
        gates.open("busy")
        gates.open("later")
    await waiting.wait(timeout_seconds=10)
    captured = capsys.readouterr()
    assert captured.err == "" and ESC not in captured.out  # stdout is no terminal: plain text
    heading = captured.out.splitlines()[0]
    assert heading.startswith(f"orchestrator {daemon.address}  1 worker, 1 waiting  at ")

    [worker] = await daemon.orchestrator.workers()
    title, header, row = section(captured.out, "WORKERS")
    assert title == "WORKERS" and header.split() == ["ID", "NAME", "STATE", "CIRCUIT", "IN", "FLIGHT", "CAPABILITIES"]
    assert row.split()[:5] == [worker.worker_id, "ToolWorker", "ACTIVE", "closed", "1/1"]
    assert "echo" in row.split()[5].split(",")

    title, header, row = section(captured.out, "QUEUE")
    assert title == "QUEUE" and header.split() == ["CAPABILITY", "PRIORITY", "WAITING"]
    assert row.split() == ["wait_for", "3", "1"]

    title, header, *rows = section(captured.out, "TASKS")
    assert title == "TASKS" and header.split() == ["ID", "CAPABILITY", "STATUS", "WORKER", "AGE"]
    assert [r.split()[:3] for r in rows] == [  # newest first
        [waiting.task_id, "wait_for", "PENDING"],
        [busy.task_id, "wait_for", "RUNNING"],
        [finished.task_id, "echo", "COMPLETED"],
    ]
    assert rows[2].split()[3] == worker.worker_id and rows[2].endswith(" ago")


async def test_tasks_0_leaves_the_tasks_out_and_an_idle_daemon_says_so(
    daemon: OrchestratorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa("top", "--once", "--tasks", "0", "--orchestrator", daemon.address) == 0
    out = capsys.readouterr().out
    assert "QUEUE  no task is waiting" in out.splitlines()
    assert "TASKS  no tasks yet" in out.splitlines()


async def test_an_unreachable_daemon_exits_1_in_the_one_wording(capsys: pytest.CaptureFixture[str]) -> None:
    for once in (["--once"], []):
        assert await wa("top", *once, "--orchestrator", "127.0.0.1:1") == 1
        captured = capsys.readouterr()
        assert captured.err.startswith("cannot reach the orchestrator at 127.0.0.1:1: UNAVAILABLE")
        assert captured.out == ""


def test_interval_and_tasks_must_be_sensible(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--interval", "0"], ["--interval", "soon"], ["--tasks", "-1"]):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(["top", *argv])
        assert exited.value.code == 2
    assert "positive number of seconds" in capsys.readouterr().err


# ---- rendering, from fixed data -------------------------------------------------------------------------

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def fixed_snapshot() -> Snapshot:
    echo = CapabilitySpec(name="echo", description="")
    resize = CapabilitySpec(name="resize", description="")
    fast = WorkerInfo("w-fast", "FastWorker", "10.0.0.1:4000", capabilities=(echo, resize), max_concurrent_tasks=4)
    slow = WorkerInfo("w-slow", "SlowWorker", "10.0.0.2:4000", capabilities=(echo,))
    running = TaskUpdate("t-run", TaskStatus.RUNNING, progress=0.25, progress_message="resizing", worker_id="w-fast")
    return Snapshot(
        address="10.0.0.9:50052",
        taken_at=NOW,
        workers=(
            WorkerHealth(fast, WorkerState.ACTIVE, circuit="closed", in_flight=2),
            WorkerHealth(slow, WorkerState.SUSPECT, "no heartbeat for 1.4s", circuit="open", in_flight=0),
        ),
        queue={"resize": {0: 3, 5: 1}, "echo": {0: 2}},
        tasks=(
            TaskRecord("t-new", "resize", TaskStatus.PENDING, submitted_at=NOW - timedelta(seconds=1.5)),
            TaskRecord(
                "t-run",
                "resize",
                TaskStatus.RUNNING,
                attempts=(Attempt(1, "w-fast", NOW - timedelta(seconds=80)),),
                last_update=running,
                submitted_at=NOW - timedelta(seconds=90),
            ),
            TaskRecord(
                "t-old",
                "echo",
                TaskStatus.FAILED,
                attempts=(Attempt(1, "w-slow", NOW - timedelta(hours=2), NOW, TaskStatus.FAILED, "boom"),),
                submitted_at=NOW - timedelta(hours=2, minutes=5),
            ),
        ),
    )


def test_render_text_is_aligned_plain_text() -> None:
    assert render_text(fixed_snapshot()).splitlines() == [
        "orchestrator 10.0.0.9:50052  2 workers, 6 waiting  at 12:00:00Z",
        "",
        "WORKERS",
        "ID      NAME        STATE                            CIRCUIT  IN FLIGHT  CAPABILITIES",
        "w-fast  FastWorker  ACTIVE                           closed   2/4        echo,resize",
        "w-slow  SlowWorker  SUSPECT (no heartbeat for 1.4s)  open     0/∞        echo",
        "",
        "QUEUE",
        "CAPABILITY  PRIORITY  WAITING",
        "echo        0         2",
        "resize      5         1",
        "resize      0         3",
        "",
        "TASKS",
        "ID     CAPABILITY  STATUS       WORKER  AGE",
        "t-new  resize      PENDING      -       1.5s ago",
        "t-run  resize      RUNNING 25%  w-fast  1m30s ago",
        "t-old  echo        FAILED       w-slow  2h05m ago",
    ]


def test_render_text_names_a_problem_first() -> None:
    lines = render_text(fixed_snapshot(), problem="cannot reach the orchestrator at x: gone (retrying)").splitlines()
    assert lines[0] == "cannot reach the orchestrator at x: gone (retrying)"
    assert lines[1].startswith("orchestrator 10.0.0.9:50052")


def test_render_on_a_terminal_draws_tables_in_colour() -> None:
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=120, color_system="standard")
    console.print(render(fixed_snapshot()))
    styled = console.export_text(styles=True, clear=False)
    text = console.export_text()
    assert ESC in styled  # coloured
    assert "─" in text  # a rule under each header
    for cell in ("w-fast", "SUSPECT (no heartbeat for 1.4s)", "0/∞", "RUNNING 25%", "2h05m ago"):
        assert cell in text
