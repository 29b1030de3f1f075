"""Importing the package picks gRPC's thread-light polling, leaves no trace in the environment and respects
a choice the user made. Each case is a fresh interpreter: the choice is made once, when gRPC loads."""

from __future__ import annotations

import os
import subprocess
import sys

# Imports the package first, then runs one unary call through a real server on a loopback port and prints
# what the environment says afterwards.
_PROBE = """
import asyncio, os, sys
first = sys.argv[1]
if first == "grpc":
    import grpc
import worker_abstraction
import grpc
from grpc import aio

async def main():
    handler = grpc.method_handlers_generic_handler(
        "probe.P", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request)}
    )
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = await channel.unary_unary("/probe.P/Echo")(b"ping", timeout=10)
    await server.stop(None)
    return answer

print(asyncio.run(main()).decode(), os.environ.get("GRPC_EXPERIMENTS", "<unset>"))
"""


def _probe(first: str, environment: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, first], env=environment, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    environment.update(extra)
    return environment


def test_the_choice_is_made_while_grpc_loads_and_not_left_for_child_processes() -> None:
    assert _probe("package", _environment()) == "ping <unset>"


def test_a_users_own_setting_is_kept() -> None:
    assert _probe("package", _environment(GRPC_EXPERIMENTS="")) == "ping"
    assert _probe("package", _environment(GRPC_EXPERIMENTS="-event_engine_dns")) == "ping -event_engine_dns"


def test_grpc_imported_first_is_left_as_it_is() -> None:
    assert _probe("grpc", _environment()) == "ping <unset>"
