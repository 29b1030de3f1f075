"""`wa health` in-process against real servers on 127.0.0.1:0: what it prints and its exit code for a serving,
draining, unknown or unreachable server, over plaintext, TLS and mTLS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.cli.test_dlq_cmd import dead_address
from tests.conftest import Gates
from tests.observability.test_health_reflection import draining_worker
from worker_abstraction import OrchestratorServer, RegistryServer, TLSConfig, certs
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.main import build_parser
from worker_abstraction.observability.health import ORCHESTRATOR_SERVICE, REGISTRY_SERVICE, WORKER_SERVICE

pytestmark = pytest.mark.timeout(30)


async def wa_health(*argv: str) -> int:
    args = build_parser().parse_args(["health", *argv])
    code: int = await args.run(args)
    return code


async def test_a_serving_server_prints_serving_and_exits_0(
    registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa_health(registry.address) == 0
    assert await wa_health(registry.address, "--service", REGISTRY_SERVICE) == 0
    assert capsys.readouterr().out.splitlines() == ["SERVING", "SERVING"]


async def test_the_daemon_answers_for_its_service(registry: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    async with OrchestratorServer(registry.address, port=0) as daemon:
        assert await wa_health(daemon.address, "--service", ORCHESTRATOR_SERVICE) == 0
    assert capsys.readouterr().out == "SERVING\n"


async def test_a_service_the_server_does_not_serve_is_unknown_and_exits_1(
    registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wa_health(registry.address, "--service", WORKER_SERVICE) == 1
    assert capsys.readouterr().out == "SERVICE_UNKNOWN\n"


async def test_a_draining_worker_is_not_serving_and_exits_1(gates: Gates, capsys: pytest.CaptureFixture[str]) -> None:
    async with draining_worker(gates) as draining:
        address = draining.worker.address
        assert await wa_health(address, "--service", WORKER_SERVICE) == 0
        stopping = draining.begin_stop()
        assert await wa_health(address, "--service", WORKER_SERVICE) == 1
        assert await wa_health(address) == 1
        assert not stopping.done()  # it said so while its task still held it
    assert capsys.readouterr().out.splitlines() == ["SERVING", "NOT_SERVING", "NOT_SERVING"]


async def test_an_unreachable_server_is_named_in_the_common_wording_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = dead_address()
    assert await wa_health(address) == 2
    assert await wa_health(address, "--watch") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count(f"cannot reach the server at {address}: UNAVAILABLE") == 2, captured.err


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    certs.init_dir(tmp_path / "pki")
    return tmp_path / "pki"


@pytest.fixture
async def mtls_registry(pki: Path) -> AsyncIterator[RegistryServer]:
    tls = TLSConfig(cert=pki / "server.pem", key=pki / "server.key", ca=pki / "ca.pem", require_client_cert=True)
    async with RegistryServer(port=0, tls=tls) as server:
        yield server


async def test_the_tls_options_are_those_of_the_other_commands(
    mtls_registry: RegistryServer, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = mtls_registry.address
    client = ("--tls-cert", str(pki / "client.pem"), "--tls-key", str(pki / "client.key"))
    assert await wa_health(address, "--tls-ca", str(pki / "ca.pem"), *client) == 0
    assert capsys.readouterr().out == "SERVING\n"
    assert await wa_health(address, "--tls-ca", str(pki / "ca.pem")) == 2  # no client certificate
    assert await wa_health(address) == 2  # plaintext
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count(f"cannot reach the server at {address}:") == 2, captured.err


class _Odd(health_pb2_grpc.HealthServicer):
    """A health service answering a status number the protocol does not define."""

    async def Check(self, request: Any, context: Any) -> Any:  # (grpc's method name)
        return health_pb2.HealthCheckResponse(status=99)


async def test_a_status_the_protocol_does_not_define_is_shown_as_unknown_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(_Odd(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        assert await wa_health(f"127.0.0.1:{port}") == 1
    finally:
        await server.stop(None)
    assert capsys.readouterr().out == "UNKNOWN(99)\n"


async def test_without_an_address_the_configured_registry_and_daemon_are_checked(
    registry: RegistryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with OrchestratorServer(registry.address, port=0) as daemon:
        (tmp_path / "wa.toml").write_text(f'registry = "{registry.address}"\norchestrator = "{daemon.address}"\n')
        assert await _configured_health(tmp_path / "wa.toml") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"registry {registry.address}: SERVING",
        f"orchestrator {daemon.address}: SERVING",
    ]
    (tmp_path / "only.toml").write_text(f'registry = "{registry.address}"\n')
    assert await _configured_health(tmp_path / "only.toml") == 0
    assert capsys.readouterr().out == "SERVING\n"


async def _configured_health(config: Path) -> int:
    args = build_parser(Settings.load({}, str(config))).parse_args(["health"])
    code: int = await args.run(args)
    return code
