"""Certificate rotation: a running server picks up new certificate, key and client CA files, no restart."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.security.test_tls import tls_for
from worker_abstraction import RegistryClient, RegistryServer, RegistryUnavailableError, TLSConfig, certs

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def one(tmp_path: Path) -> Path:
    certs.init_dir(tmp_path / "one")
    return tmp_path / "one"


@pytest.fixture
def two(tmp_path: Path) -> Path:
    certs.init_dir(tmp_path / "two")
    return tmp_path / "two"


@pytest.fixture
def served(tmp_path: Path, one: Path) -> Path:
    """The files the server is configured with: a copy of PKI one's server certificate, key and CA."""
    directory = tmp_path / "served"
    directory.mkdir()
    put(directory, one, "server.pem", "server.key", "ca.pem")
    return directory


@pytest.fixture
async def tls_server(served: Path) -> AsyncIterator[RegistryServer]:
    async with RegistryServer(port=0, tls=tls_for(served, "server")) as server:
        yield server


def put(directory: Path, source: Path, *names: str) -> None:
    """Replace files the way rotation tools should: write beside, then rename over."""
    for name in names:
        temporary = directory / f"{name}.new"
        temporary.write_bytes((source / name).read_bytes())
        os.replace(temporary, directory / name)


async def refusal(address: str, tls: TLSConfig) -> str | None:
    """Why a new client with `tls` is refused by the server at `address` (None: it is served)."""
    client = RegistryClient(address, tls=tls, call_timeout_seconds=3)
    try:
        await client.list_workers()
    except RegistryUnavailableError as error:
        return str(error)
    finally:
        await client.aclose()
    return None


async def test_a_server_presents_a_rotated_certificate_to_new_connections(
    tls_server: RegistryServer, served: Path, one: Path, two: Path
) -> None:
    address = tls_server.address
    trusts_one, trusts_two = TLSConfig(ca=one / "ca.pem"), TLSConfig(ca=two / "ca.pem")
    assert await refusal(address, trusts_one) is None
    connected = RegistryClient(address, tls=trusts_one, call_timeout_seconds=3)
    try:
        assert await connected.list_workers() == []

        put(served, two, "server.pem", "server.key")

        assert await refusal(address, trusts_two) is None
        refused = await refusal(address, trusts_one)
        assert refused is not None and "handshake" in refused
        assert await connected.list_workers() == []  # a connection made before keeps its certificate
    finally:
        await connected.aclose()


async def test_a_server_verifies_clients_against_a_rotated_ca(served: Path, one: Path, two: Path) -> None:
    async with RegistryServer(port=0, tls=tls_for(served, "server", require_client_cert=True)) as server:
        # Every client trusts the server's CA (one); they differ in the CA that signed their own certificate.
        signed_by_one = TLSConfig(cert=one / "client.pem", key=one / "client.key", ca=one / "ca.pem")
        signed_by_two = TLSConfig(cert=two / "client.pem", key=two / "client.key", ca=one / "ca.pem")
        assert await refusal(server.address, signed_by_one) is None
        assert await refusal(server.address, signed_by_two) is not None

        put(served, two, "ca.pem")

        assert await refusal(server.address, signed_by_two) is None
        assert await refusal(server.address, signed_by_one) is not None


async def test_files_that_cannot_be_used_leave_the_certificate_in_use_with_one_warning(
    tls_server: RegistryServer, served: Path, one: Path, two: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="worker_abstraction.tls")
    address = tls_server.address
    trusts_one, trusts_two = TLSConfig(ca=one / "ca.pem"), TLSConfig(ca=two / "ca.pem")
    new_cert = (two / "server.pem").read_bytes()

    (served / "server.pem").write_bytes(new_cert[: len(new_cert) // 2])  # caught halfway through writing
    assert await refusal(address, trusts_one) is None
    assert await refusal(address, trusts_one) is None
    put(served, two, "server.pem")  # the new certificate, but the old key is still there
    assert await refusal(address, trusts_one) is None
    assert await refusal(address, trusts_one) is None

    warnings = [record.getMessage() for record in caplog.records if record.name == "worker_abstraction.tls"]
    assert len(warnings) == 2, warnings  # one for each broken state, not one for each connection
    assert "cert: no PEM certificate" in warnings[0] and "still using the old ones" in warnings[0]
    assert "key: not the key of the first certificate in cert" in warnings[1]

    put(served, two, "server.key")
    assert await refusal(address, trusts_two) is None
    assert await refusal(address, trusts_one) is not None
