"""The metrics endpoint's HTTP server: prometheus_client's WSGI app on the standard library's wsgiref server
(as prometheus_client's own `start_http_server` runs it), over HTTPS with a server's TLS settings, behind
its credentials check.

- TLS: the server's certificate and key, read once at start (unlike the gRPC port, which reads them again
  when they change: restart to rotate them here); with `require_client_cert`, clients present a
  certificate the CA signed (mTLS).
- Credentials: with an `Authenticator`, a scrape carries `Authorization: Bearer TOKEN` of a principal with a
  role of `auth.METRICS_ROLES` (operator), or, without a token, a verified client certificate naming one.
  Otherwise it is answered 401 (no or unknown credentials) or 403 (a principal without the role).
- Hostile clients: the TLS handshake happens on the connection's own thread, never in the accept loop, and
  every read has a deadline, so a client that connects and says nothing holds one thread for a while and
  no one else up; at most `MAX_CONNECTIONS` connections are served at once, the others are closed.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app

from worker_abstraction import auth
from worker_abstraction.errors import InvalidTLSConfigError
from worker_abstraction.tls import TLSConfig

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
READ_TIMEOUT_SECONDS = 10.0
_NAMES_KEY = "worker_abstraction.certificate_names"  # the WSGI environ key of the client certificate's names

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def metrics_app(registry: CollectorRegistry, authenticator: auth.Authenticator | None) -> WSGIApp:
    """prometheus_client's app for `registry`, behind `authenticator`'s check when there is one."""
    app: WSGIApp = make_wsgi_app(registry)
    if authenticator is None:
        return app

    def checked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        header = environ.get("HTTP_AUTHORIZATION")
        names: tuple[str, ...] = environ.get(_NAMES_KEY, ())
        found = authenticator.principal_of([header] if header is not None else [], lambda: names)
        if isinstance(found, str):
            return _refuse(start_response, "401 Unauthorized", found, [("WWW-Authenticate", 'Bearer realm="metrics"')])
        if not found.roles & auth.METRICS_ROLES:
            need = " or ".join(sorted(auth.METRICS_ROLES))
            return _refuse(start_response, "403 Forbidden", f"{found.name} may not read metrics: it needs {need}")
        return app(environ, start_response)

    return checked


def _refuse(
    start_response: Callable[..., Any], status: str, why: str, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    body = f"{why}\n".encode(errors="replace")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), *(headers or [])])
    return [body]


def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """A server context presenting `tls`'s cert and key (and requiring client certificates under mTLS).

    Raises:
        InvalidTLSConfigError: the cert or key is no file (PEM bytes cannot be served here), or they (or the
            CA) cannot be loaded.
    """
    if tls.cert is None or tls.key is None:
        raise InvalidTLSConfigError(["a TLS server needs a cert and a key"])
    if isinstance(tls.cert, bytes) or isinstance(tls.key, bytes):
        raise InvalidTLSConfigError(["the metrics endpoint reads its cert and key from files: give paths"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=Path(tls.cert), keyfile=Path(tls.key))
        if isinstance(tls.ca, bytes):
            context.load_verify_locations(cadata=tls.ca.decode(errors="replace"))
        elif tls.ca is not None:
            context.load_verify_locations(cafile=Path(tls.ca))
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        raise InvalidTLSConfigError([f"the metrics endpoint cannot use {tls.cert}/{tls.key}: {error}"]) from error
    if tls.require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, with a deadline on every read, the TLS handshake done here, and no access log."""

    def setup(self) -> None:
        self.request.settimeout(READ_TIMEOUT_SECONDS)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        if isinstance(self.request, ssl.SSLSocket):
            environ[_NAMES_KEY] = _certificate_names(self.request.getpeercert() or {})
        return environ

    def log_message(self, format: str, *args: Any) -> None:  # (the overridden signature)
        logger.debug("metrics %s: " + format, self.address_string(), *args)


def _certificate_names(certificate: dict[str, Any]) -> tuple[str, ...]:
    """The subject alternative names, then the common names, of a verified peer certificate."""
    alternative = [str(value) for _, value in certificate.get("subjectAltName", ())]
    common = [str(value) for rdn in certificate.get("subject", ()) for key, value in rdn if key == "commonName"]
    return (*alternative, *common)


class MetricsServer(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most `MAX_CONNECTIONS` at once; TLS when given a context."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], context: ssl.SSLContext | None, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self.context, self.max_connections = context, max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._full = False  # (touched by the accepting thread only)
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.context is not None:
            # The handshake waits for the client: it runs on the connection's thread (see _Handler.setup).
            connection = self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            if not self._full:  # once per flood, not once per connection refused
                logger.warning("metrics endpoint: %d connections open, refusing more", self.max_connections)
            self._full = True
            self.shutdown_request(request)
            return
        self._full = False
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A failed handshake, a client that went away or stalled: its business, not a traceback on stderr.
        logger.debug("metrics endpoint: connection from %s failed", client_address, exc_info=True)


def make_server(
    host: str, port: int, app: WSGIApp, context: ssl.SSLContext | None, *, max_connections: int = MAX_CONNECTIONS
) -> MetricsServer:
    """Bind `app` to host:port (an IPv6 host too), not serving yet (`serve_forever` on a thread).

    Raises:
        OSError: the address cannot be listened on.
    """
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class = type("MetricsServer", (MetricsServer,), {"address_family": family})
    server: MetricsServer = server_class((host, port), context, max_connections)
    server.set_app(app)
    return server
