"""TLSConfig: the certificates one part of the system presents and trusts.

One value serves both ends of a connection. A server presents `cert`/`key` and, with
`require_client_cert`, admits only clients whose certificate `ca` signed (mTLS). A client trusts the
servers `ca` signed (the system's roots when `ca` is unset) and, when it has `cert`/`key`, presents them
as its own identity. A part that is both (a worker serving tasks and talking to the registry, the
orchestrator daemon) uses the same value for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from worker_abstraction.errors import InvalidTLSConfigError

PEM = str | Path | bytes
"""A path to a PEM file, or the PEM bytes themselves."""

_HANDSHAKE_WORDS = ("ssl", "tls", "handshake", "certificate")
# What gRPC reports when a plaintext client reaches a TLS server: the server drops the connection.
_DROPPED_WORDS = ("socket closed", "connection reset", "end of tcp stream", "eof")


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Certificates for TLS, and for mutual TLS with `require_client_cert`.

    Args:
        cert: this side's certificate chain (a path or PEM bytes); a server needs one, a client presents
            one for mTLS.
        key: the private key of `cert`; given together with it.
        ca: the CA certificates trusted to sign the other side's certificate (a client without one trusts
            the system's roots; a server needs one to require client certificates).
        require_client_cert: (server side) refuse clients without a certificate `ca` signed.
        server_name: (client side) the name expected in the server's certificate instead of the host in
            the address, e.g. when connecting by IP to a certificate issued for a DNS name.

    Raises:
        InvalidTLSConfigError: every problem found: a file that cannot be read or holds no PEM data,
            a cert without its key or a key without its cert, client certificates required without a CA.
    """

    cert: PEM | None = None
    key: PEM | None = None
    ca: PEM | None = None
    require_client_cert: bool = False
    server_name: str | None = None

    def __post_init__(self) -> None:
        problems = [
            problem for name in ("cert", "key", "ca") if (problem := _check_pem(name, getattr(self, name))) is not None
        ]
        if (self.cert is None) != (self.key is None):
            given, missing = ("cert", "key") if self.key is None else ("key", "cert")
            problems.append(f"{given} given without {missing}: a certificate and its key go together")
        if self.require_client_cert and self.ca is None:
            problems.append("require_client_cert needs a ca to verify client certificates with")
        if self.server_name is not None and not self.server_name:
            problems.append("server_name is empty")
        if problems:
            raise InvalidTLSConfigError(problems)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials for a server presenting `cert` (and verifying clients against `ca`).

        Raises:
            InvalidTLSConfigError: there is no cert and key to serve with.
        """
        if self.cert is None or self.key is None:
            raise InvalidTLSConfigError(["a TLS server needs a cert and a key"])
        return grpc.ssl_server_credentials(
            [(_read(self.key), _read(self.cert))],
            root_certificates=_read(self.ca) if self.ca is not None else None,
            require_client_auth=self.require_client_cert,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials for a client trusting `ca` (and presenting `cert` when it has one)."""
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca) if self.ca is not None else None,
            private_key=_read(self.key) if self.key is not None else None,
            certificate_chain=_read(self.cert) if self.cert is not None else None,
        )


def explain(details: str, tls: TLSConfig | None) -> str:
    """A hint about TLS to add to an UNAVAILABLE error's `details` ("" when nothing points at TLS).

    A TLS client that fails its handshake sees the words; a plaintext client reaching a TLS server, or a
    client without a certificate reaching an mTLS server, only sees the connection dropped, so those hints
    are guesses and say "if".
    """
    text = details.lower()
    if tls is not None and any(word in text for word in _HANDSHAKE_WORDS):
        return " (TLS handshake failed: check the CA, the certificates' names and dates, and that the server uses TLS)"
    if not any(word in text for word in _DROPPED_WORDS):
        return ""
    if tls is None:
        return " (the server dropped the connection: if it uses TLS, connect with TLS too, e.g. --tls-ca)"
    if tls.cert is None:
        return " (the server dropped the connection: if it requires client certificates (mTLS), present one)"
    return ""


def _check_pem(name: str, value: PEM | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        data = value
    else:
        try:
            data = Path(value).read_bytes()
        except OSError as error:
            return f"{name} {str(value)!r} cannot be read: {error.strerror or error}"
    if b"-----BEGIN " not in data:
        where = "the bytes given" if isinstance(value, bytes) else f"file {str(value)!r}"
        return f"{name}: {where} has no PEM data (no '-----BEGIN' line)"
    return None


def _read(value: PEM) -> bytes:
    return value if isinstance(value, bytes) else Path(value).read_bytes()
