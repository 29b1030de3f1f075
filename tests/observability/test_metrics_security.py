"""The metrics endpoint behind TLS and credentials, scraped over real HTTPS with the development CA: 401
without credentials, 403 for a client, 200 for an operator (by token or, under mTLS, by certificate); plain
HTTP and open when neither is configured; a client that connects and says nothing holds no one else up."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import eventually
from tests.observability.test_metrics import scrape
from worker_abstraction import TLSConfig, certs
from worker_abstraction.auth import Authenticator, TokenFile
from worker_abstraction.errors import InvalidTLSConfigError
from worker_abstraction.observability import http
from worker_abstraction.observability.exposition import MetricsEndpoint
from worker_abstraction.observability.metrics import RegistryMetrics

pytestmark = pytest.mark.timeout(30)

OPERATOR = "operator-token-0123456789"
CLIENT = "client-token-0123456789ab"
TOKENS = f"""
[[principal]]
name = "operator/ops"
roles = ["operator"]
token = "{OPERATOR}"

[[principal]]
name = "client/app"
roles = ["client"]
token = "{CLIENT}"
"""


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    certs.init_dir(tmp_path / "pki")
    (tmp_path / "tokens.toml").write_text(TOKENS)
    return tmp_path / "pki"


@pytest.fixture
def endpoints() -> Iterator[list[MetricsEndpoint]]:
    started: list[MetricsEndpoint] = []
    yield started
    for endpoint in started:
        endpoint.close()


def serve(
    endpoints: list[MetricsEndpoint], *, tls: TLSConfig | None = None, auth: Authenticator | None = None
) -> MetricsEndpoint:
    metrics = RegistryMetrics()
    metrics.heartbeats.inc()
    endpoints.append(metrics.serve(0, tls=tls, auth=auth))
    return endpoints[-1]


def client_context(pki: Path, identity: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki / "ca.pem")
    if identity is not None:
        context.load_cert_chain(pki / f"{identity}.pem", pki / f"{identity}.key")
    return context


async def get(url: str, *, context: ssl.SSLContext | None = None, token: str | None = None) -> tuple[int, str]:
    """The status and body of a GET (on a thread: the endpoint's loop must keep turning)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})

    def fetch() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as refused:
            with refused:
                return refused.code, refused.read().decode()

    return await asyncio.to_thread(fetch)


async def test_https_with_tokens_answers_operators_only(pki: Path, endpoints: list[MetricsEndpoint]) -> None:
    tokens = Authenticator(TokenFile(pki.parent / "tokens.toml"))
    tls = TLSConfig(cert=pki / "server.pem", key=pki / "server.key")
    endpoint = serve(endpoints, tls=tls, auth=tokens)
    assert endpoint.url.startswith("https://127.0.0.1:")
    context = client_context(pki)
    assert (await get(endpoint.url, context=context))[0] == 401
    assert (await get(endpoint.url, context=context, token="not-a-known-token-at-all"))[0] == 401
    assert (await get(endpoint.url, context=context, token=CLIENT))[0] == 403
    status, body = await get(endpoint.url, context=context, token=OPERATOR)
    assert status == 200 and "wa_heartbeats_total 1.0" in body


async def test_an_unauthorized_answer_names_the_bearer_scheme(pki: Path, endpoints: list[MetricsEndpoint]) -> None:
    endpoint = serve(endpoints, auth=Authenticator(TokenFile(pki.parent / "tokens.toml")))
    request = urllib.request.Request(endpoint.url, headers={"Authorization": "Basic b3A6b3A="})

    def fetch() -> urllib.error.HTTPError:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        refused.value.close()
        return refused.value

    refused = await asyncio.to_thread(fetch)
    assert refused.code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await get(endpoint.url, token=OPERATOR))[0] == 200  # tokens over plain HTTP, when asked so


async def test_under_mtls_the_client_certificate_names_the_principal(
    pki: Path, endpoints: list[MetricsEndpoint]
) -> None:
    tls = TLSConfig(cert=pki / "server.pem", key=pki / "server.key", ca=pki / "ca.pem", require_client_cert=True)
    endpoint = serve(endpoints, tls=tls, auth=Authenticator(None))
    assert (await get(endpoint.url, context=client_context(pki, "operator")))[0] == 200
    assert (await get(endpoint.url, context=client_context(pki, "client")))[0] == 403
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        await get(endpoint.url, context=client_context(pki))  # no client certificate: no handshake


async def test_without_tls_or_credentials_metrics_stay_plain_and_open(endpoints: list[MetricsEndpoint]) -> None:
    endpoint = serve(endpoints)
    assert endpoint.url.startswith("http://127.0.0.1:")
    samples = await scrape(endpoint)
    assert samples[("wa_heartbeats_total", frozenset())] == 1


async def test_a_silent_or_plaintext_client_holds_no_one_else_up(pki: Path, endpoints: list[MetricsEndpoint]) -> None:
    tls = TLSConfig(cert=pki / "server.pem", key=pki / "server.key")
    endpoint = serve(endpoints, tls=tls)
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=5):  # connects, never handshakes
        assert (await get(endpoint.url, context=client_context(pki)))[0] == 200
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            await get(endpoint.url.replace("https://", "http://"))
        assert (await get(endpoint.url, context=client_context(pki)))[0] == 200


def test_pem_bytes_cannot_be_served_over_https(pki: Path) -> None:
    tls = TLSConfig(cert=(pki / "server.pem").read_bytes(), key=(pki / "server.key").read_bytes())
    with pytest.raises(InvalidTLSConfigError):
        RegistryMetrics().serve(0, tls=tls)


async def test_connections_past_the_bound_are_closed_and_the_endpoint_recovers() -> None:
    metrics = RegistryMetrics()
    server = http.make_server("127.0.0.1", 0, http.metrics_app(metrics.registry, None), None, max_connections=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        silent = [socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) for _ in range(2)]
        try:
            with pytest.raises((urllib.error.URLError, ConnectionError)):
                await get(url)  # closed at once: both slots are held by clients that say nothing
        finally:
            for connection in silent:
                connection.close()

        async def answered() -> bool:
            try:
                return (await get(url))[0] == 200
            except (urllib.error.URLError, ConnectionError):
                return False

        await eventually(answered, timeout_seconds=10, what="a scrape once the silent clients left")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
