"""Real `wa` processes for end-to-end tests: start one, read its readiness line, always clean up."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STARTUP_SECONDS = 15.0
STOP_SECONDS = 15.0

# A registry that forgets fast and sweeps often, and workers that heartbeat often, so eviction and
# re-registration happen within a second or two.
FAST_REGISTRY = ("--ttl", "1", "--sweep-interval", "0.2")
FAST_WORKER = ("--heartbeat-interval", "0.2")


def env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without its WA_* variables, plus `extra` (which may set some)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Daemon:
    """A started `wa registry` / `wa worker` and the readiness line it printed."""

    process: asyncio.subprocess.Process
    ready_line: str
    stderr_path: Path

    @property
    def address(self) -> str:
        return self.ready_line.rsplit(" ", 1)[-1]

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    @property
    def worker_id(self) -> str:
        return self.ready_line.split()[1]

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        async with asyncio.timeout(STOP_SECONDS):
            return await self.process.wait()


@dataclass
class Result:
    code: int
    out: str
    err: str


Start = Callable[..., Awaitable[Daemon]]


async def wa(*args: str, cwd: Path = HERE, extra_env: Mapping[str, str] | None = None) -> Result:
    """Run a short-lived `wa` command to completion."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker_abstraction.cli",
        *args,
        cwd=cwd,
        env=env(extra_env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Starts `wa ARGS...` and returns once it printed its readiness line; kills everything at teardown."""
    started: list[asyncio.subprocess.Process] = []
    names = itertools.count()  # taken before any await, so concurrent starts get files of their own

    async def _start(*args: str, cwd: Path = HERE, extra_env: Mapping[str, str] | None = None) -> Daemon:
        stderr_path = tmp_path / f"daemon-{next(names)}-{args[0]}.stderr"
        with stderr_path.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "worker_abstraction.cli",
                *args,
                cwd=cwd,
                env=env(extra_env),
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        started.append(process)
        assert process.stdout is not None
        try:
            async with asyncio.timeout(STARTUP_SECONDS):
                line = (await process.stdout.readline()).decode().strip()
        except TimeoutError:
            line = ""
        assert " listening on " in line, f"wa {' '.join(args)} printed {line!r}; stderr:\n{stderr_path.read_text()}"
        return Daemon(process, line, stderr_path)

    yield _start
    for process in started:
        if process.returncode is None:
            process.kill()
        await process.wait()
