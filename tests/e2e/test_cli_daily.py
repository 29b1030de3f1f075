"""`wa` for daily use, as real processes: submit through a daemon or in-process, --json, --detach, Ctrl-C,
output into a pipe whose reader leaves early, and `wa top` and `wa submit`'s progress bar on a terminal.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from processes import HERE, Daemon, Result, Start, env, wa

from worker_abstraction import RemoteOrchestrator

pytestmark = pytest.mark.timeout(90)

WAIT_SECONDS = 20.0  # the bound on every wait for a process or a line


@dataclass
class Cluster:
    registry: Daemon
    worker: Daemon
    daemon: Daemon


@pytest.fixture
async def cluster(start: Start) -> Cluster:
    registry = await start("registry", "--port", "0")
    worker = await start("worker", "_cli_workers:DailyWorker", "--port", "0", "--registry", registry.address)
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:")
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("shout", timeout_seconds=WAIT_SECONDS)
    return Cluster(registry, worker, daemon)


async def wa_into_closed_pipe(*args: str) -> Result:
    """Run `wa ARGS` with stdout a pipe whose reader has already gone: its first write meets EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker_abstraction.cli", *args,
            cwd=HERE, env=env(), stdout=write_end, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(write_end)
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Result(process.returncode, "", err.decode())


async def test_every_printing_command_into_a_pipe_whose_reader_left_exits_141_without_a_traceback(
    cluster: Cluster,
) -> None:
    async with RemoteOrchestrator(cluster.daemon.address) as remote:
        handle = await remote.execute_task("shout", {"text": "hi"})
        await handle.result(timeout_seconds=WAIT_SECONDS)
    daemon, registry = ("--orchestrator", cluster.daemon.address), ("--registry", cluster.registry.address)
    commands: Sequence[tuple[str, ...]] = [
        ("workers", *registry),
        ("workers", "--json", *registry),
        ("workers", *daemon),
        ("task", "list", *daemon),
        ("task", "list", "--json", *daemon),
        ("task", "get", handle.task_id, *daemon),
        ("task", "get", handle.task_id, "--json", *daemon),
        ("task", "watch", handle.task_id, *daemon),
        ("dlq", "list", "--json", *daemon),
        ("queue", *daemon),
        ("queue", "--json", *daemon),
        ("top", "--once", *daemon),
        ("top", *daemon),
        ("submit", "shout", "-p", "text=hi", *daemon),
        ("config", "show"),
    ]
    # A few at a time: fifteen interpreters starting at once on a small, busy machine can outlast the bound.
    at_once = asyncio.Semaphore(4)

    async def run(command: tuple[str, ...]) -> Result:
        async with at_once:
            return await wa_into_closed_pipe(*command)

    results = await asyncio.gather(*(run(command) for command in commands))
    unquiet = {
        " ".join(c): (r.code, r.err) for c, r in zip(commands, results, strict=True) if (r.code, r.err) != (141, "")
    }
    assert not unquiet


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker_abstraction.cli", *args,
        cwd=HERE, env=env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def lines_until(process: asyncio.subprocess.Process, text: str) -> list[str]:
    """Stdout lines up to the first that contains `text`."""
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(WAIT_SECONDS):
        while not lines or text not in lines[-1]:
            line = await process.stdout.readline()
            assert line, f"stdout ended before {text!r}: {lines}"
            lines.append(line.decode().rstrip("\n"))
    return lines


async def ended(process: asyncio.subprocess.Process) -> Result:
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Result(process.returncode, (out or b"").decode(), (err or b"").decode())


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_through_a_daemon_leaves_the_task_there_and_says_how_to_follow_or_cancel_it(
    cluster: Cluster, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    address, marker = cluster.daemon.address, tmp_path / "canceled"
    process = await spawn("submit", "linger", "-p", f"marker={marker}", "--orchestrator", address)
    lines = await lines_until(process, "RUNNING 0% lingering")
    task_id = lines[0].split()[1]
    process.send_signal(sig)
    result = await ended(process)
    assert result.code == code
    assert f"the orchestrator at {address} still runs task {task_id}" in result.err
    assert f"wa task watch {task_id} --orchestrator {address}" in result.err
    assert f"wa cancel {task_id} --orchestrator {address}" in result.err
    got = await wa("task", "get", task_id, "--json", "--orchestrator", address)
    assert json.loads(got.out)["status"] == "RUNNING" and not marker.exists()  # the daemon still runs it

    assert (await wa("cancel", task_id, "--orchestrator", address)).code == 0  # the command it printed
    watched = await wa("task", "watch", task_id, "--orchestrator", address)
    assert watched.code == 1 and watched.out.splitlines()[-1].startswith("CANCELED")
    assert marker.exists()


async def test_ctrl_c_in_process_cancels_the_task_on_its_worker_then_exits_130(
    cluster: Cluster, tmp_path: Path
) -> None:
    marker = tmp_path / "canceled"
    process = await spawn("submit", "linger", "-p", f"marker={marker}", "--registry", cluster.registry.address)
    lines = await lines_until(process, "RUNNING 0% lingering")
    task_id = lines[0].split()[1]
    process.send_signal(signal.SIGINT)
    result = await ended(process)
    assert result.code == 130
    assert result.err.splitlines() == [
        f"no orchestrator daemon configured: running one in this process (registry {cluster.registry.address})",
        f"interrupted: task {task_id} canceled on worker {cluster.worker.worker_id}",
    ]
    assert marker.read_text() == "canceled"  # the handler saw the cancel before the command exited


async def test_detach_through_a_daemon_prints_the_task_id_alone_and_is_refused_in_process(cluster: Cluster) -> None:
    address = cluster.daemon.address
    detached = await wa("submit", "shout", "-p", "text=later", "--detach", "--orchestrator", address)
    assert detached.code == 0 and detached.err == ""
    [task_id] = detached.out.split()
    assert detached.out == f"{task_id}\n"
    watched = await wa("task", "watch", task_id, "--orchestrator", address)
    assert watched.code == 0 and json.loads(watched.out[watched.out.index("{") :]) == {"result": "LATER"}

    refused = await wa("submit", "shout", "-p", "text=x", "--detach", "--registry", cluster.registry.address)
    assert refused.code == 2 and refused.out == ""
    assert refused.err.startswith("wa submit: error: --detach needs an orchestrator daemon")


async def test_the_daemon_named_in_wa_toml_runs_the_task(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "wa.toml").write_text(f'orchestrator = "{cluster.daemon.address}"\n')
    result = await wa("submit", "shout", "-p", "text=from the file", "--json", cwd=tmp_path)
    assert result.code == 0 and result.err == ""  # no in-process orchestrator
    *_, final = (json.loads(line) for line in result.out.splitlines())
    assert final["output"] == {"result": "FROM THE FILE"}
    got = await wa("task", "get", final["task_id"], "--orchestrator", cluster.daemon.address)
    assert got.code == 0


async def test_submit_json_into_head_exits_141_quietly(cluster: Cluster, tmp_path: Path) -> None:
    # An output far larger than a pipe holds: the command is still writing it when `head` leaves.
    text = tmp_path / "text.txt"
    text.write_text("x" * 300_000)
    read_end, write_end = os.pipe()
    try:
        head = await asyncio.create_subprocess_exec("head", "-n", "1", stdin=read_end, stdout=asyncio.subprocess.PIPE)
        submit = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker_abstraction.cli", "submit", "shout", "-p", f"text=@{text}", "--json",
            "--orchestrator", cluster.daemon.address,
            cwd=HERE, env=env(), stdout=write_end, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(read_end)
        os.close(write_end)
    [first] = (await ended(head)).out.splitlines()
    assert json.loads(first)["event"] == "submitted"
    result = await ended(submit)
    assert (result.code, result.err) == (141, "")


async def test_top_into_a_pipe_prints_a_snapshot_per_interval_names_a_daemon_gone_and_ends_0_on_ctrl_c(
    cluster: Cluster,
) -> None:
    process = await spawn("top", "--interval", "0.2", "--orchestrator", cluster.daemon.address)
    first = await lines_until(process, "TASKS")
    assert first[0].startswith(f"orchestrator {cluster.daemon.address}  1 worker, 0 waiting")
    assert cluster.worker.worker_id in "\n".join(first)
    await lines_until(process, "orchestrator ")  # the next snapshot
    assert await cluster.daemon.stop() == 0
    await lines_until(process, f"cannot reach the orchestrator at {cluster.daemon.address}: ")
    process.send_signal(signal.SIGINT)
    result = await ended(process)
    assert (result.code, result.err) == (0, "")
    assert "\x1b" not in result.out


class Terminal:
    """A pseudo-terminal for a `wa` process to draw on, and what it drew."""

    def __init__(self) -> None:
        self.fd, self.process_end = pty.openpty()
        self.drawn = b""

    async def until(self, text: str) -> None:
        """Read what the process draws until `text` is there."""
        await self._read(lambda: text.encode() in self.drawn, f"{text!r} never drawn")

    async def until_closed(self) -> None:
        """Read until every process holding the terminal ended (the read then fails)."""
        await self._read(lambda: False, "the terminal stayed open")

    async def _read(self, done: Callable[[], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(self.fd, readable.set)
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                while not done():
                    await readable.wait()
                    readable.clear()
                    try:
                        self.drawn += os.read(self.fd, 65536)
                    except OSError:  # EIO: nothing holds the other end any more
                        return
        except TimeoutError:
            raise AssertionError(f"{what}; drawn: {self.drawn[-2000:]!r}") from None
        finally:
            loop.remove_reader(self.fd)

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    yield term
    term.close()


async def spawn_on(terminal: Terminal, *args: str, stdout_piped: bool = False) -> asyncio.subprocess.Process:
    """`wa ARGS` with stderr (and stdout, unless `stdout_piped`) on `terminal`."""
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker_abstraction.cli", *args,
            cwd=HERE, env=env(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_piped else terminal.process_end, stderr=terminal.process_end,
        )  # fmt: skip
    finally:
        os.close(terminal.process_end)


async def test_top_on_a_terminal_redraws_in_place_and_ends_0_on_ctrl_c(cluster: Cluster, terminal: Terminal) -> None:
    process = await spawn_on(terminal, "top", "--interval", "0.2", "--orchestrator", cluster.daemon.address)
    try:
        await terminal.until("WORKERS")
        await terminal.until("\x1b[2K\x1b[1A")  # redrawn in place: a line erased, the cursor moved up
        assert cluster.worker.worker_id.encode() in terminal.drawn and b"\x1b[1mWORKERS" in terminal.drawn  # bold
        process.send_signal(signal.SIGINT)
        await terminal.until_closed()
        async with asyncio.timeout(WAIT_SECONDS):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_submit_draws_a_progress_bar_on_a_terminal_stderr_and_keeps_stdout_plain(
    cluster: Cluster, terminal: Terminal
) -> None:
    argv = ("submit", "shout", "-p", "text=hi", "--orchestrator", cluster.daemon.address)
    process = await spawn_on(terminal, *argv, stdout_piped=True)
    try:
        await terminal.until_closed()
        result = await ended(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert result.code == 0
    assert b"shout" in terminal.drawn and b" 50%" in terminal.drawn and b"shouting" in terminal.drawn
    assert "\x1b" not in result.out and "RUNNING 50% shouting" in result.out.splitlines()
