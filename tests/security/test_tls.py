"""TLS and mTLS on every server and channel, with certificates from the `wa certs init` code path."""

from __future__ import annotations

import asyncio
import datetime
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio

from tests.conftest import ToolWorker
from worker_abstraction import (
    InvalidTLSConfigError,
    OrchestratorServer,
    RegistryClient,
    RegistryServer,
    RegistryUnavailableError,
    RemoteOrchestrator,
    TaskStatus,
    TLSConfig,
    certs,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.auth import Authenticator


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    certs.init_dir(directory)
    return directory


def tls_for(pki: Path, stem: str, *, require_client_cert: bool = False) -> TLSConfig:
    return TLSConfig(
        cert=pki / f"{stem}.pem", key=pki / f"{stem}.key", ca=pki / "ca.pem", require_client_cert=require_client_cert
    )


def expired(pki: Path, role: str, *, serves: bool = False) -> TLSConfig:
    """A certificate of `role` that expired yesterday, signed by the right CA."""
    ca = certs.Issued((pki / "ca.pem").read_bytes(), (pki / "ca.key").read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    past = certs.issue(
        ca,
        role,
        "expired",
        hosts=certs.LOCAL_HOSTS if serves else (),
        serves=serves,
        not_before=now - datetime.timedelta(days=10),
        not_after=now - datetime.timedelta(days=1),
    )
    return TLSConfig(cert=past.cert_pem, key=past.key_pem, ca=pki / "ca.pem")


@pytest.fixture
async def mtls_registry(pki: Path) -> AsyncIterator[RegistryServer]:
    server = RegistryServer(port=0, tls=tls_for(pki, "server", require_client_cert=True))
    await server.start()
    yield server
    await server.stop(None)


async def test_a_task_runs_end_to_end_over_mtls_on_registry_worker_and_daemon(
    pki: Path, mtls_registry: RegistryServer
) -> None:
    worker = ToolWorker(mtls_registry.address, tls=tls_for(pki, "worker", require_client_cert=True))
    daemon = OrchestratorServer(mtls_registry.address, port=0, tls=tls_for(pki, "server", require_client_cert=True))
    async with worker, daemon, RemoteOrchestrator(daemon.address, tls=tls_for(pki, "client")) as remote:
        async with asyncio.timeout(10):
            await worker.wait_registered()
            await remote.wait_for_workers("echo", timeout_seconds=5)
            handle = await remote.execute_task("echo", {"text": "tls", "times": 2})
            assert await handle.result(timeout_seconds=5) == {"text": "tlstls"}
            assert handle.status is TaskStatus.COMPLETED


async def test_a_client_without_a_certificate_is_refused_under_mtls(pki: Path, mtls_registry: RegistryServer) -> None:
    client = RegistryClient(mtls_registry.address, tls=TLSConfig(ca=pki / "ca.pem"), call_timeout_seconds=3)
    try:
        with pytest.raises(RegistryUnavailableError) as refused:
            await client.list_workers()
    finally:
        await client.aclose()
    assert "mTLS" in str(refused.value)
    with_cert = RegistryClient(mtls_registry.address, tls=tls_for(pki, "operator"), call_timeout_seconds=3)
    try:
        assert await with_cert.list_workers() == []
    finally:
        await with_cert.aclose()


async def test_a_plaintext_client_against_a_tls_server_is_told_about_tls(mtls_registry: RegistryServer) -> None:
    client = RegistryClient(mtls_registry.address, call_timeout_seconds=3)
    try:
        with pytest.raises(RegistryUnavailableError) as refused:
            await client.list_workers()
    finally:
        await client.aclose()
    assert "UNAVAILABLE" in str(refused.value)
    assert "TLS" in str(refused.value)


async def test_a_tls_client_against_a_plaintext_server_is_told_the_handshake_failed(pki: Path) -> None:
    async with RegistryServer(port=0) as plaintext:
        client = RegistryClient(plaintext.address, tls=tls_for(pki, "client"), call_timeout_seconds=3)
        try:
            with pytest.raises(RegistryUnavailableError) as refused:
                await client.list_workers()
        finally:
            await client.aclose()
    assert "TLS" in str(refused.value)


async def test_a_server_signed_by_another_ca_is_refused(pki: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    certs.init_dir(other)
    async with RegistryServer(port=0, tls=tls_for(other, "server")) as foreign:
        client = RegistryClient(foreign.address, tls=tls_for(pki, "client"), call_timeout_seconds=3)
        try:
            with pytest.raises(RegistryUnavailableError):
                await client.list_workers()
        finally:
            await client.aclose()


async def test_a_client_signed_by_another_ca_is_refused_under_mtls(
    mtls_registry: RegistryServer, pki: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    certs.init_dir(other)
    # Trusts the right server CA but presents a certificate the server's CA did not sign.
    tls = TLSConfig(cert=other / "client.pem", key=other / "client.key", ca=pki / "ca.pem")
    client = RegistryClient(mtls_registry.address, tls=tls, call_timeout_seconds=3)
    try:
        with pytest.raises(RegistryUnavailableError):
            await client.list_workers()
    finally:
        await client.aclose()


async def test_an_expired_server_certificate_is_refused(pki: Path, tmp_path: Path) -> None:
    async with RegistryServer(port=0, tls=expired(pki, "server", serves=True)) as server:
        client = RegistryClient(server.address, tls=tls_for(pki, "client"), call_timeout_seconds=3)
        try:
            with pytest.raises(RegistryUnavailableError):
                await client.list_workers()
        finally:
            await client.aclose()


async def test_an_expired_client_certificate_is_refused_under_mtls(pki: Path, mtls_registry: RegistryServer) -> None:
    client = RegistryClient(mtls_registry.address, tls=expired(pki, "client"), call_timeout_seconds=3)
    try:
        with pytest.raises(RegistryUnavailableError):
            await client.list_workers()
    finally:
        await client.aclose()


def test_tls_config_lists_every_problem(tmp_path: Path) -> None:
    with pytest.raises(InvalidTLSConfigError) as invalid:
        TLSConfig(cert=tmp_path / "missing.pem", ca=b"not pem", require_client_cert=False, server_name="")
    assert len(invalid.value.problems) == 4  # unreadable cert, ca without PEM, cert without key, empty name
    assert isinstance(invalid.value, ValueError)


def test_tls_config_pairs_cert_and_key_and_needs_a_ca_for_client_certs(pki: Path) -> None:
    with pytest.raises(InvalidTLSConfigError):
        TLSConfig(key=pki / "client.key")
    with pytest.raises(InvalidTLSConfigError):
        TLSConfig(cert=pki / "server.pem", key=pki / "server.key", require_client_cert=True)
    with pytest.raises(InvalidTLSConfigError):
        TLSConfig(ca=pki / "ca.pem").server_credentials()  # a server needs its own certificate
    assert TLSConfig(ca=(pki / "ca.pem").read_bytes()).cert is None


def test_tls_config_is_frozen(pki: Path) -> None:
    tls = TLSConfig(ca=pki / "ca.pem")
    with pytest.raises(AttributeError):
        tls.ca = None  # type: ignore[misc]


def test_init_dir_writes_private_keys_and_refuses_to_overwrite(tmp_path: Path) -> None:
    written = certs.init_dir(tmp_path / "pki")
    assert {p.name for p in written} == {
        f"{stem}{suffix}" for stem in ("ca", "server", "worker", "client", "operator") for suffix in (".pem", ".key")
    }
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600 if path.suffix == ".key" else mode & 0o077 != 0o077
    before = (tmp_path / "pki" / "ca.pem").read_bytes()
    with pytest.raises(FileExistsError):
        certs.init_dir(tmp_path / "pki")
    assert (tmp_path / "pki" / "ca.pem").read_bytes() == before
    certs.init_dir(tmp_path / "pki", force=True)
    assert (tmp_path / "pki" / "ca.pem").read_bytes() != before


async def test_under_mtls_without_tokens_the_certificates_roles_are_checked(pki: Path) -> None:
    checks = Authenticator(None)  # what `--tls-client-auth` without `--auth-tokens` gives a `wa` server
    registry = RegistryServer(port=0, tls=tls_for(pki, "server", require_client_cert=True), auth=checks)
    async with registry:
        worker = ToolWorker(registry.address, tls=tls_for(pki, "worker", require_client_cert=True), auth=checks)
        daemon = OrchestratorServer(
            registry.address, port=0, tls=tls_for(pki, "server", require_client_cert=True), auth=checks
        )
        async with worker, daemon, RemoteOrchestrator(daemon.address, tls=tls_for(pki, "client")) as remote:
            async with asyncio.timeout(10):
                await worker.wait_registered()
                await remote.wait_for_workers("echo", timeout_seconds=5)
                handle = await remote.execute_task("echo", {"text": "roles"})
                assert await handle.result(timeout_seconds=5) == {"text": "roles"}
            # A client's certificate may not register a worker, nor a worker's submit a task.
            client = tls_for(pki, "client")
            async with aio.secure_channel(registry.address, client.channel_credentials()) as channel:
                with pytest.raises(aio.AioRpcError) as refused:
                    await pb_grpc.RegistryServiceStub(channel).RegisterWorker(pb.RegisterWorkerRequest(), timeout=5)
            assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert "'client/client' (client) may not call RegisterWorker" in (refused.value.details() or "")
            as_worker = tls_for(pki, "worker")
            async with aio.secure_channel(daemon.address, as_worker.channel_credentials()) as channel:
                with pytest.raises(aio.AioRpcError) as refused:
                    await pb_grpc.OrchestratorServiceStub(channel).SubmitTask(pb.SubmitTaskRequest(), timeout=5)
            assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
