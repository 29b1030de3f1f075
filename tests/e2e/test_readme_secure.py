"""The README's secure setups, run line by line exactly as written, as a new user pastes them into a shell.

Each block marked `<!-- README test: NAME ... -->` is run in a fresh directory (with the repository on
PYTHONPATH, as "from the repository root" has it, and the venv's `wa` on PATH): a line ending in `&` is a
server, started and waited for until it prints its readiness line; any other line must exit 0. The last
line submits a task, whose result must be printed.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

import pytest

from tests.e2e.processes import REPO, STARTUP_SECONDS, env
from tests.examples.readme_block import servers

pytestmark = pytest.mark.timeout(120)

README = REPO / "README.md"
PORTS = (50051, 50052)  # the defaults the README's lines rely on


def blocks() -> dict[str, list[str]]:
    """The marked ```sh blocks of the README by name, as lists of lines (comments after `  #` dropped)."""
    found: dict[str, list[str]] = {}
    for match in re.finditer(r"<!-- README test: ([\w-]+)[^>]*-->\n```sh\n(.*?)\n```", README.read_text(), re.S):
        found[match.group(1)] = [line for line in match.group(2).splitlines() if line.strip()]
    return found


def _in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def run_block(lines: list[str], directory: Path) -> str:
    """Run the block's lines in `directory`; the last line's stdout."""
    variables = env(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO),
            "WA_CONFIG": "",  # (no wa.toml of the machine's)
        }
    )
    output = ""
    async with servers() as started:
        for number, line in enumerate(lines):
            command = line.split("  #", 1)[0].strip()
            if command.endswith("&"):
                with (directory / f"server-{number}.err").open("wb") as log:
                    process = await asyncio.create_subprocess_shell(
                        command.removesuffix("&").strip(),
                        cwd=directory,
                        env=variables,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=log,
                        start_new_session=True,
                    )
                started.append(process)
                assert process.stdout is not None
                async with asyncio.timeout(STARTUP_SECONDS):
                    ready = (await process.stdout.readline()).decode()
                assert "listening on" in ready, (
                    f"{command!r} printed {ready!r}; stderr: {(directory / f'server-{number}.err').read_text()}"
                )
                continue
            process = await asyncio.create_subprocess_shell(
                command,
                cwd=directory,
                env=variables,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
            async with asyncio.timeout(60):
                out, err = await process.communicate()
            assert process.returncode == 0, f"{command!r} exited {process.returncode}: {err.decode()[-2000:]}"
            output = out.decode()
    return output


@pytest.mark.parametrize("name", ["secure-mtls", "secure-tokens"])
async def test_the_readmes_secure_setup_works_verbatim(name: str, tmp_path: Path) -> None:
    lines = blocks()[name]
    assert lines[-1].startswith("wa submit ") or "wa submit " in lines[-1]
    busy = [port for port in PORTS if _in_use(port)]
    assert not busy, f"the README's lines use ports {PORTS}; something else listens on {busy}"
    output = await run_block(lines, tmp_path)
    assert '"words": 1' in output and "COMPLETED" in output, output
