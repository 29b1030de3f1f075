"""Start-up stays light: importing the package, and `wa --help` or `wa COMMAND --help`, load none of the
heavy optional dependencies; the path that needs one loads it. Checked by what a fresh interpreter has in
`sys.modules`, never by timing (start-up times are reported in bench/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

# Modules whose import costs tens of milliseconds each and which only some paths use.
HEAVY = (
    "cryptography",
    "grpc_health.v1.health_pb2",
    "grpc_reflection.v1alpha.reflection",
    "jsonschema",
    "nats",
    "opentelemetry.sdk",
    "prometheus_client",
    "pydantic",
    "rich",
    "starlette",
    "uvicorn",
)
# The parts a program that only imports the package, or only asks `wa` for help, does not use.
SUBSYSTEMS = (
    "worker_abstraction._proto",
    "worker_abstraction.orchestrator",
    "worker_abstraction.registry",
    "worker_abstraction.worker",
    "worker_abstraction.dashboard",
    "worker_abstraction.stores",
)
COMMANDS = (
    "registry",
    "worker",
    "orchestrator",
    "submit",
    "cancel",
    "respond",
    "approve",
    "deny",
    "inbox",
    "task",
    "workers",
    "health",
    "queue",
    "limits",
    "top",
    "dlq",
    "workflow",
    "schedule",
    "config",
    "certs",
    "token",
)

# Runs the statements, then prints the names of every module loaded, as JSON, on the last line of stdout.
_PROBE = """
import json, sys
{statements}
print(json.dumps(sorted(sys.modules)))
"""
_HELP = """
import contextlib, io
from worker_abstraction.cli.main import main
for argv in {argvs!r}:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(argv) == 0, argv
    assert "usage: wa" in out.getvalue(), argv
"""


# No config file, and no WA_* or OTEL_* setting that could load something on the way.
_ENVIRONMENT = {k: v for k, v in os.environ.items() if not k.startswith(("WA_", "OTEL_"))} | {"WA_CONFIG": ""}


def _loaded(statements: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(statements=statements)],
        env=_ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def _found(modules: set[str], wanted: tuple[str, ...]) -> list[str]:
    return [name for name in wanted if any(m == name or m.startswith(f"{name}.") for m in modules)]


def test_importing_the_package_loads_grpc_and_none_of_the_heavy_parts() -> None:
    modules = _loaded("import worker_abstraction")
    assert "grpc" in modules  # loaded at once, so that its polling is chosen first (see _transport)
    assert _found(modules, HEAVY + SUBSYSTEMS) == []


def test_help_of_wa_and_of_every_command_loads_none_of_the_heavy_parts() -> None:
    argvs = [["--help"], *([command, "--help"] for command in COMMANDS)]
    modules = _loaded(_HELP.format(argvs=argvs))
    assert _found(modules, HEAVY + SUBSYSTEMS) == []


def test_each_public_name_loads_its_own_module_on_first_use() -> None:
    modules = _loaded("from worker_abstraction import Orchestrator, TaskStatus")
    assert _found(modules, ("worker_abstraction.orchestrator",)) == ["worker_abstraction.orchestrator"]
    assert _found(modules, ("pydantic", "rich", "opentelemetry.sdk")) == []


def test_describing_a_capability_loads_pydantic() -> None:
    worker = (
        "from worker_abstraction import BaseWorker, capability\n"
        "class Greeter(BaseWorker):\n"
        "    @capability\n"
        "    async def greet(self, name: str) -> str:\n"
        "        return name\n"
    )
    assert _found(_loaded(worker), ("pydantic",)) == ["pydantic"]


def test_a_worker_and_a_daemon_client_load_only_their_own_side() -> None:
    engine = ("worker_abstraction.orchestrator.embedded", "worker_abstraction.orchestrator.core.engine")
    registry_server = ("worker_abstraction.registry.server", "jsonschema")
    worker = _loaded("from worker_abstraction import BaseWorker")
    assert _found(worker, ("worker_abstraction.orchestrator", *registry_server)) == []
    client = _loaded("from worker_abstraction import RemoteOrchestrator")
    assert _found(client, (*engine, *registry_server)) == []
