"""examples/etl/README.md's commands, run line by line exactly as written, as a user pastes them into a shell
in the repository root: what each prints is what the README says it prints.

The block marked `<!-- example test: etl ... -->` runs in a fresh directory that holds `examples` (a link to
the repository's), with the venv's `wa` on PATH. A line ending in `&` is a server, started and waited for
until it prints its readiness line; any other line must exit 0, or 1 when its comment says "exits 1". The
default ports the lines rely on are taken from free ones through WA_REGISTRY_PORT and WA_ORCHESTRATOR_PORT
(and the clients' WA_REGISTRY and WA_ORCHESTRATOR), so the lines stay verbatim and nothing else is disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from examples.etl.workers import EtlWorker
from tests.e2e.processes import REPO, STARTUP_SECONDS, STOP_SECONDS, env
from worker_abstraction import RemoteOrchestrator

pytestmark = pytest.mark.timeout(120)

README = REPO / "examples" / "etl" / "README.md"
REPORT = "Orders: 10 orders, 1,032.62 EUR (FR 375.50, DE 238.15, US 231.93, JP 96.38, GB 90.66)"


@dataclass
class Ran:
    line: str
    code: int
    out: str
    err: str


def block() -> list[str]:
    """The marked ```sh block of the example's README, one string per line."""
    match = re.search(r"<!-- example test: etl[^>]*-->\n```sh\n(.*?)\n```", README.read_text(), re.S)
    assert match is not None, "examples/etl/README.md lost its marked block"
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
            if not ran:  # (a user types slower than this: the daemon hears of the worker before the first run)
                async with RemoteOrchestrator(f"127.0.0.1:{daemon}") as remote:
                    await remote.wait_for_workers("extract", timeout_seconds=20)
            process = await asyncio.create_subprocess_shell(
                command, cwd=directory, env=variables, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
            async with asyncio.timeout(60):
                out, err = await process.communicate()
            expected = 1 if "exits 1" in line else 0
            assert process.returncode == expected, f"{command!r} exited {process.returncode}: {err.decode()[-2000:]}"
            ran.append(Ran(command, process.returncode, out.decode(), err.decode()))
    return ran


def steps(out: str) -> dict[str, str]:
    """The drawing's step rows, by step: the rest of the row after the step's name."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("STAGE"))
    found: dict[str, str] = {}
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        cells = line.removeprefix("on failure").split()
        name, *rest = cells[1:] if cells[0].isdigit() else cells
        found[name] = " ".join(rest)
    return found


def fact(out: str, key: str) -> str:
    match = re.search(rf"^{key} +(.+)$", out, re.M)
    assert match is not None, f"no {key!r} in:\n{out}"
    return match.group(1)


def test_the_etl_worker_declares_each_step_with_its_parameters() -> None:
    declared = {
        spec.name: [(p.name, p.type, p.required) for p in spec.parameters] for spec in EtlWorker.capability_specs()
    }
    assert declared == {
        "extract": [("source", "string", True), ("chunk_size", "integer", False)],
        "transform": [("chunk", "array", True), ("rates", "object", False), ("rates_file", "string", False)],
        "aggregate": [("parts", "array", True)],
        "report": [("total", "object", True), ("title", "string", False)],
        "notify": [("step", "string", True), ("error", "string", True)],
    }


async def test_the_etl_examples_commands_run_fail_on_demand_and_rerun_from_the_failed_step(tmp_path: Path) -> None:
    lines = block()
    assert sum(line.split("  #")[0].strip().endswith("&") for line in lines) == 3  # registry, worker, daemon
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    run, got, _, failed, failed_got, _, rerun, listed = await run_block(lines, tmp_path)

    assert run.line == "wa workflow run examples/etl/etl.json --id etl-1 --wait"
    assert fact(run.out, "status") == "COMPLETED" and fact(run.out, "steps") == "4/4 completed"
    drawn = steps(run.out)
    assert drawn["transform"].startswith("COMPLETED 3 extract ")  # a map over three chunks
    assert drawn["report"].startswith("COMPLETED - aggregate ") and "1,032.62 EUR" in drawn["report"]
    assert drawn["alert"] == "- - -"  # the on_failure step did not run
    record = json.loads(got.out)
    assert record["status"] == "COMPLETED" and record["steps"]["report"]["output"] == {"report": REPORT}

    assert failed.line == "wa workflow run examples/etl/etl_failing.json --id etl-2 --wait" and failed.code == 1
    for out in (failed.out, failed_got.out):
        assert fact(out, "status") == "FAILED" and fact(out, "failed step") == "transform"
        assert fact(out, "error") == "task etl-2.transform.1 failed: LookupError: no EUR rate for JPY (order 1006)"
        drawn = steps(out)
        assert drawn["extract"].startswith("COMPLETED ") and drawn["transform"].startswith("FAILED 3 extract ")
        assert drawn["aggregate"].startswith("SKIPPED ") and drawn["report"].startswith("SKIPPED ")
        assert drawn["alert"].startswith('COMPLETED - - {"alert":"ETL failed at step \'transform\': ')
    assert "workflow etl-2 FAILED" in failed.err

    assert rerun.line == "wa workflow rerun etl-2 transform --id etl-3 --watch"
    changes = rerun.out[: rerun.out.index("\n\n")].splitlines()
    assert changes[0] == "workflow etl-3 (etl, a rerun of etl-2 from step transform)"
    assert "extract RUNNING" not in changes and "transform RUNNING (3 tasks)" in changes
    assert changes[-1] == "report COMPLETED"
    assert fact(rerun.out, "rerun of") == "etl-2" and fact(rerun.out, "status") == "COMPLETED"
    drawn = steps(rerun.out)
    assert drawn["extract"].startswith("COMPLETED (kept) ")  # its output kept, not run again
    assert drawn["transform"].startswith("COMPLETED 3 ") and "1,032.62 EUR" in drawn["report"]
    assert (tmp_path / "rates.json").exists()  # (written where the worker runs: the user's directory)

    shown = README.read_text()  # what the README says these commands print, they print
    assert all(f"```\n{ran.out.strip()}\n```" in shown for ran in (run, rerun))
    assert f"```\n{failed.out[failed.out.index(chr(10) * 2) :].strip()}\n```" in shown

    assert [line.split() for line in listed.out.splitlines()] == [
        ["ID", "NAME", "STATUS", "STEPS", "FAILED", "STEP"],
        ["etl-3", "etl", "COMPLETED", "4/4", "-"],
        ["etl-2", "etl", "FAILED", "2/5", "transform"],
        ["etl-1", "etl", "COMPLETED", "4/4", "-"],
    ]
