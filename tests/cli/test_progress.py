"""`wa submit`'s progress bar: driven with updates into a recording terminal console, and `wa submit` in-process
with a stderr that says it is a terminal (the bar there, stdout unchanged) or is none (no bar).
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from rich.console import Console

from worker_abstraction import RegistryServer, TaskStatus, TaskUpdate
from worker_abstraction.cli.main import build_parser
from worker_abstraction.cli.progress import ProgressBar
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

pytestmark = pytest.mark.timeout(30)

ESC = "\x1b"
ERASE_LINE = "\x1b[2K"


def terminal() -> Console:
    return Console(file=io.StringIO(), record=True, force_terminal=True, width=100)


def drawn(console: Console) -> str:
    """The text drawn since the last call (without colours or cursor moves)."""
    return console.export_text()


def running(progress: float, message: str = "") -> TaskUpdate:
    return TaskUpdate("t1", TaskStatus.RUNNING, progress=progress, progress_message=message)


def test_the_bar_appears_at_the_first_progress_and_follows_every_report() -> None:
    console = terminal()
    with ProgressBar("resize", console=console) as bar:
        bar.show(TaskUpdate("t1", TaskStatus.PENDING))
        bar.show(running(0.0))
        assert not bar.visible and drawn(console) == ""  # no progress reported yet: no bar

        bar.show(running(0.0, "starting"))
        assert bar.visible
        assert "resize" in (text := drawn(console)) and "0%" in text and "starting" in text

        bar.show(running(0.5, "halfway"))
        text = drawn(console)
        assert "50%" in text and "halfway" in text and "━" in text

        bar.show(running(0.75))
        assert "75%" in drawn(console)

        bar.show(TaskUpdate("t1", TaskStatus.COMPLETED))
        assert "100%" in drawn(console)  # completed, then cleared
        assert not bar.visible
    raw = console.file.getvalue()  # type: ignore[attr-defined]
    assert ERASE_LINE in raw.rsplit("100%", 1)[1]  # the line is erased after its last drawing


def test_a_failed_task_clears_the_bar_without_completing_it() -> None:
    console = terminal()
    with ProgressBar("resize", console=console) as bar:
        bar.show(running(0.4, "working"))
        assert "40%" in drawn(console)
        bar.show(TaskUpdate("t1", TaskStatus.FAILED, error_message="boom"))
        assert not bar.visible and "100%" not in drawn(console)


def test_leaving_the_block_clears_a_bar_still_shown() -> None:
    console = terminal()
    with ProgressBar("resize", console=console) as bar:
        bar.show(running(0.2))
        assert bar.visible
    assert not bar.visible


@pytest.mark.parametrize(
    ("console", "enabled"),
    [
        (Console(file=io.StringIO(), record=True, force_terminal=False), True),  # no terminal
        (Console(file=io.StringIO(), record=True, force_terminal=True), False),  # --json
    ],
    ids=["no-terminal", "disabled"],
)
def test_nothing_is_drawn_off_a_terminal_or_when_disabled(console: Console, enabled: bool) -> None:
    with ProgressBar("resize", console=console, enabled=enabled) as bar:
        for update in (running(0.5, "halfway"), TaskUpdate("t1", TaskStatus.COMPLETED)):
            bar.show(update)
            assert not bar.visible
    assert console.file.getvalue() == ""  # type: ignore[attr-defined]


# ---- `wa submit` in-process ------------------------------------------------------------------------------


class TerminalStderr(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[OrchestratorServer]:
    await start_worker()
    async with OrchestratorServer(registry.address, port=0) as server:
        await server.orchestrator.wait_for_workers("echo", timeout_seconds=5)
        yield server


async def submit(*argv: str) -> int:
    args = build_parser().parse_args(["submit", *argv])
    async with asyncio.timeout(20):
        code: int = await args.run(args)
    return code


async def test_submit_draws_the_bar_on_a_terminal_stderr_and_leaves_stdout_as_it_was(
    daemon: OrchestratorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("echo", "-p", "text=hi", "--orchestrator", daemon.address)
    assert await submit(*argv) == 0  # stderr is no terminal: no bar
    plain = capsys.readouterr()
    assert plain.err == "" and "RUNNING 50% halfway" in plain.out.splitlines()

    stderr = TerminalStderr()
    monkeypatch.setattr(sys, "stderr", stderr)
    assert await submit(*argv) == 0
    out = capsys.readouterr().out
    assert ESC not in out
    assert out.splitlines()[1:] == plain.out.splitlines()[1:]
    assert "echo" in stderr.getvalue() and "50%" in stderr.getvalue() and "halfway" in stderr.getvalue()

    for flag in ("--json", "--detach"):
        stderr.seek(0)
        stderr.truncate()
        assert await submit(*argv, flag) == 0
        assert stderr.getvalue() == "", flag
    capsys.readouterr()
