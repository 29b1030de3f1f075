"""Run a README's marked ```sh block line by line exactly as written, as a user pastes it into a shell.

The block marked `<!-- example test: NAME ... -->` runs in a given directory with the venv's `wa` and `python`
on PATH. A line ending in `&` is a server, started and waited for until it prints its readiness line; any
other line must exit 0, or 1 when its comment says "exits 1". The default ports the lines rely on are taken
from free ones through WA_REGISTRY_PORT and WA_ORCHESTRATOR_PORT (and the clients' WA_REGISTRY and
WA_ORCHESTRATOR), so the lines stay verbatim and nothing else is disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.processes import REPO, STARTUP_SECONDS, STOP_SECONDS, env
from worker_abstraction import RemoteOrchestrator

WAIT_FOR_WORKERS_SECONDS = 20


@dataclass
class Ran:
    line: str
    code: int
    out: str
    err: str


def block(readme: Path, name: str) -> list[str]:
    """The ```sh block of `readme` marked `<!-- example test: NAME ... -->`, one string per line."""
    match = re.search(rf"<!-- example test: {re.escape(name)}[^>]*-->\n```sh\n(.*?)\n```", readme.read_text(), re.S)
    assert match is not None, f"{readme.relative_to(REPO)} lost its marked block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def servers() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """The servers a block starts; each stopped (its process group) at the end."""
    started: list[asyncio.subprocess.Process] = []
    try:
        yield started
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                async with asyncio.timeout(STOP_SECONDS):
                    await process.wait()
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            if process.stdout is not None:
                await process.stdout.read()  # (to its end: the pipe is closed with it)


async def run_block(
    lines: list[str], directory: Path, *, wait_for: str | None = None, line_seconds: float = 60.0
) -> list[Ran]:
    """Run the lines in `directory`; what each command line printed, in order.

    `wait_for` names a capability the daemon must know a worker for before the first command line runs (a
    user types slower than this); `line_seconds` bounds each command line.
    """
    registry, daemon = _free_port(), _free_port()
    variables = env(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "WA_CONFIG": "",  # (no wa.toml of the machine's)
            "WA_REGISTRY_PORT": str(registry),
            "WA_REGISTRY": f"127.0.0.1:{registry}",
            "WA_ORCHESTRATOR_PORT": str(daemon),
            "WA_ORCHESTRATOR": f"127.0.0.1:{daemon}",
        }
    )
    ran: list[Ran] = []
    async with servers() as started:
        for number, line in enumerate(lines):
            command = line.split("  #", 1)[0].strip()
            if command.endswith("&"):
                with (directory / f"server-{number}.err").open("wb") as log:
                    process = await asyncio.create_subprocess_shell(
                        command.removesuffix("&").strip(), cwd=directory, env=variables,
                        stdout=asyncio.subprocess.PIPE, stderr=log, start_new_session=True,
                    )  # fmt: skip
                started.append(process)
                assert process.stdout is not None
                async with asyncio.timeout(STARTUP_SECONDS):
                    ready = (await process.stdout.readline()).decode()
                assert "listening on" in ready, f"{command!r}: {(directory / f'server-{number}.err').read_text()}"
                continue
            if wait_for is not None and not ran:
                async with RemoteOrchestrator(f"127.0.0.1:{daemon}") as remote:
                    await remote.wait_for_workers(wait_for, timeout_seconds=WAIT_FOR_WORKERS_SECONDS)
            process = await asyncio.create_subprocess_shell(
                command, cwd=directory, env=variables, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
            try:
                async with asyncio.timeout(line_seconds):
                    out, err = await process.communicate()
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
                raise
            expected = 1 if "exits 1" in line else 0
            assert process.returncode == expected, f"{command!r} exited {process.returncode}: {err.decode()[-2000:]}"
            ran.append(Ran(command, process.returncode, out.decode(), err.decode()))
    return ran
