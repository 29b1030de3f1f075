"""The systemd units in services/: systemd's own verifier accepts them (where it is installed), their `wa`
command lines parse with the real `wa` parser and agree on ports, ExecStartPost= waits until the server is
SERVING (and no longer than its bound), and the health check restarts only a running unit that does not
answer SERVING."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from worker_abstraction import RegistryServer
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.main import build_parser
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

SERVICES = Path(__file__).resolve().parents[2] / "services"
INSTALLED_WA = "/opt/worker-abstraction/.venv/bin/wa"
WA = str(Path(sys.executable).parent / "wa")  # this virtualenv's `wa`, standing in for the installed one
INSTANCE = "ocr"
# What an instance's /etc/default/wa-worker-ocr holds.
INSTANCE_ENV = {"WA_WORKER_CLASS": "_workers:EchoWorker", "WA_WORKER_PORT": "50061"}
UNITS = sorted(p for p in SERVICES.glob("*/wa-*") if p.suffix in (".service", ".timer"))
_HEALTH = re.compile(re.escape(INSTALLED_WA) + r" health [^;|&>]*")

Unit = dict[str, list[tuple[str, str]]]


def parse(path: Path) -> Unit:
    """A unit file's sections and their key=value lines in order (keys may repeat, as systemd allows)."""
    sections: Unit = {}
    current: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, equals, value = line.partition("=")
        assert equals, f"{path.name}: {line!r} is no key=value line"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, key: str, section: str = "Service") -> list[str]:
    return [value for found, value in unit.get(section, []) if found == key]


def environment(unit: Unit) -> dict[str, str]:
    """What the unit's processes see: its Environment= lines, then an instance's environment file."""
    env = dict(value.split("=", 1) for value in values(unit, "Environment"))
    return {**env, **INSTANCE_ENV}


def expand(command: str, env: dict[str, str]) -> str:
    """The command line as systemd runs it: ${VAR} and %i replaced."""
    command = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), command)
    return command.replace("%i", INSTANCE)


def wa_args(command_line: str, env: dict[str, str], tmp_path: Path) -> argparse.Namespace:
    argv = shlex.split(command_line)
    assert argv[0] == INSTALLED_WA, argv
    return build_parser(Settings.load(env, cwd=tmp_path)).parse_args(argv[1:])


SERVERS = [p for p in UNITS if p.suffix == ".service" and values(parse(p), "ExecStart")[0].startswith(INSTALLED_WA)]


def test_the_units_are_the_ones_documented() -> None:
    names = {p.name for p in UNITS}
    assert {"wa-worker@.service", "wa-orchestrator.service", "wa-worker-health@.timer"} <= names
    readme = (SERVICES / "README.md").read_text()
    assert all(name in readme for name in names), names


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    paths = []
    for unit in UNITS:
        name = unit.name.replace("@.", f"@{INSTANCE}.")  # templates are verified as an instance
        (tmp_path / name).write_text(unit.read_text().replace(INSTALLED_WA, WA))
        paths.append(str(tmp_path / name))
    result = subprocess.run(
        ["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@pytest.mark.parametrize("path", SERVERS, ids=lambda p: p.name)
def test_exec_start_parses_with_wa_and_the_health_checks_ask_its_port(path: Path, tmp_path: Path) -> None:
    unit = parse(path)
    env = environment(unit)
    (start,) = values(unit, "ExecStart")
    args = wa_args(expand(start, env), env, tmp_path)
    command = path.name.removeprefix("wa-").split("@")[0].split(".")[0]
    assert args.command == command
    assert isinstance(args.port, int) and args.port > 0
    if command == "worker":
        assert (args.worker, args.name) == (INSTANCE_ENV["WA_WORKER_CLASS"], INSTANCE)
    check = path.with_name(re.sub(r"^(wa-[a-z]+)", r"\1-health", path.name))
    assert check.exists() and check.with_suffix(".timer").exists(), f"no health check units next to {path.name}"
    check_unit = parse(check)
    lines = [(line, env) for line in values(unit, "ExecStartPost")]
    lines += [(line, environment(check_unit)) for line in values(check_unit, "ExecStart")]
    health = [(found, line_env) for line, line_env in lines for found in _HEALTH.findall(expand(line, line_env))]
    assert len(health) == 2, lines
    for found, line_env in health:
        checked = wa_args(found, line_env, tmp_path)
        assert (checked.command, checked.address) == ("health", f"127.0.0.1:{args.port}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def run_shell(line: str, env: dict[str, str], *, path_first: Path | None = None) -> int:
    """Run a unit's `/bin/sh -c ...` (or `timeout N /bin/sh -c ...`) line with this virtualenv's `wa`."""
    argv = shlex.split(line.replace(INSTALLED_WA, WA))
    full = {**os.environ, **env}
    if path_first is not None:
        full["PATH"] = f"{path_first}{os.pathsep}{full['PATH']}"
    process = await asyncio.create_subprocess_exec(*argv, env=full)
    try:
        async with asyncio.timeout(40):
            return await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def daemon() -> AsyncIterator[OrchestratorServer]:
    async with RegistryServer(port=0) as registry, OrchestratorServer(registry.address, port=free_port()) as server:
        yield server


async def test_exec_start_post_waits_for_serving_and_gives_up_at_its_bound(daemon: OrchestratorServer) -> None:
    (line,) = values(parse(SERVICES / "orchestrator" / "wa-orchestrator.service"), "ExecStartPost")
    assert line.startswith("/usr/bin/timeout 30 ")
    port = daemon.address.rsplit(":", 1)[1]
    assert await run_shell(line, {"WA_ORCHESTRATOR_PORT": port}) == 0
    # Nothing listening: the loop ends at its bound (shortened here) with timeout's code, failing the start.
    assert await run_shell(line.replace("timeout 30 ", "timeout 2 "), {"WA_ORCHESTRATOR_PORT": str(free_port())}) == 124


@pytest.fixture
def fake_systemctl(tmp_path: Path) -> Path:
    """A `systemctl` that records its arguments, and answers is-active as $FAKE_ACTIVE says."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {tmp_path / "systemctl.log"}\n'
        'if [ "$1" = is-active ]; then exit "$FAKE_ACTIVE"; fi\nexit 0\n'
    )
    script.chmod(0o755)
    return bin_dir


async def test_the_health_check_restarts_only_a_running_unit_that_is_not_serving(
    daemon: OrchestratorServer, fake_systemctl: Path, tmp_path: Path
) -> None:
    (line,) = values(parse(SERVICES / "orchestrator" / "wa-orchestrator-health.service"), "ExecStart")
    log = tmp_path / "systemctl.log"
    serving = {"WA_ORCHESTRATOR_PORT": daemon.address.rsplit(":", 1)[1], "FAKE_ACTIVE": "0"}
    assert await run_shell(line, serving, path_first=fake_systemctl) == 0
    assert not log.exists()
    gone = {"WA_ORCHESTRATOR_PORT": str(free_port())}
    assert await run_shell(line, {**gone, "FAKE_ACTIVE": "3"}, path_first=fake_systemctl) == 0  # stopping
    assert log.read_text().splitlines() == ["is-active --quiet wa-orchestrator.service"]
    assert await run_shell(line, {**gone, "FAKE_ACTIVE": "0"}, path_first=fake_systemctl) == 0  # running
    assert log.read_text().splitlines()[1:] == [
        "is-active --quiet wa-orchestrator.service",
        "restart wa-orchestrator.service",
    ]
