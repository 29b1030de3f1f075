"""examples/streaming/README.md's commands, run line by line exactly as written, as a user pastes them into a
shell in the repository root: the callers print the tokens in order, then the result, as the README shows.

As in `test_etl_example.py`: the block marked `<!-- example test: streaming ... -->` runs in a fresh directory
that holds `examples` (a link to the repository's), with the venv's `wa` and `python` on PATH. A line ending
in `&` is a server, started and waited for until it prints its readiness line; any other line must exit 0.
The default ports the lines rely on are taken from free ones through WA_REGISTRY_PORT and
WA_ORCHESTRATOR_PORT (and the clients' WA_REGISTRY and WA_ORCHESTRATOR), so the lines stay verbatim.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from examples.streaming.workers import MAX_TOKENS, TokenWorker, tokens
from tests.e2e.processes import REPO, STARTUP_SECONDS, STOP_SECONDS, env

pytestmark = pytest.mark.timeout(90)

README = REPO / "examples" / "streaming" / "README.md"
LINE_SECONDS = 45.0


@dataclass
class Ran:
    line: str
    out: str
    err: str


def block() -> list[str]:
    """The marked ```sh block of the example's README, one string per line."""
    match = re.search(r"<!-- example test: streaming[^>]*-->\n```sh\n(.*?)\n```", README.read_text(), re.S)
    assert match is not None, "examples/streaming/README.md lost its marked block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def servers() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """The servers the block starts; each stopped (its process group) at the end."""
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


async def run_block(lines: list[str], directory: Path) -> list[Ran]:
    """Run the lines in `directory`; what each command line printed, in order."""
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
            process = await asyncio.create_subprocess_shell(
                command, cwd=directory, env=variables, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
            try:
                async with asyncio.timeout(LINE_SECONDS):
                    out, err = await process.communicate()
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
                raise
            assert process.returncode == 0, f"{command!r} exited {process.returncode}: {err.decode()[-2000:]}"
            ran.append(Ran(command, out.decode(), err.decode()))
    return ran


def test_the_token_worker_declares_generate_and_its_text_is_the_same_for_the_same_prompt() -> None:
    declared = {
        spec.name: [(p.name, p.type, p.required) for p in spec.parameters] for spec in TokenWorker.capability_specs()
    }
    assert declared == {"generate": [("prompt", "string", True), ("max_tokens", "integer", True)]}
    made = list(tokens("The river", 24))
    assert len(made) == 24 and made == list(tokens("The river", 24))
    assert made != list(tokens("At night", 24))
    assert len(list(tokens("", MAX_TOKENS))) == MAX_TOKENS  # (an empty prompt starts anywhere)


async def test_the_streaming_examples_commands_print_the_tokens_in_order_then_the_result(tmp_path: Path) -> None:
    lines = block()
    assert [line.endswith("&") for line in lines] == [True, True, True, False, False]  # registry, worker, daemon
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    ran = await run_block(lines, tmp_path)
    assert len(ran) == 2
    shown = README.read_text()
    for call in ran:
        arguments = shlex.split(call.line)
        assert arguments[:3] == ["python", "-m", "examples.streaming.caller"]
        prompt, count = arguments[3], int(arguments[arguments.index("--max-tokens") + 1])
        expected = "".join(tokens(prompt, count))
        streamed, said, result = call.out.splitlines()
        # The prompt, then every token in order (the caller checks each chunk's number), then the result.
        assert streamed == prompt + expected
        assert said == f"{count} chunks streamed; the result, the same text:"
        assert json.loads(result) == expected
    first = ran[0].out.strip()
    assert f"```\n{first}\n```" in shown  # what the README says the first caller prints, it prints
