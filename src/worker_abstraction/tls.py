"""TLSConfig: the certificates one part of the system presents and trusts.

One value serves both ends of a connection. A server presents `cert`/`key` and, with
`require_client_cert`, admits only clients whose certificate `ca` signed (mTLS). A client trusts the
servers `ca` signed (the system's roots when `ca` is unset) and, when it has `cert`/`key`, presents them
as its own identity. A part that is both (a worker serving tasks and talking to the registry, the
orchestrator daemon) uses the same value for both.

A server reads its files again when they change (certificate rotation without a restart): before each
handshake gRPC asks, from one of its own threads, for new certificates, and gets them only when a file's
size, modification time or inode moved and the new set is whole.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from worker_abstraction.errors import InvalidTLSConfigError

if TYPE_CHECKING:
    # cryptography loads when a server first checks its certificate and key, not with every TLSConfig.
    from cryptography import x509

logger = logging.getLogger(__name__)

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

        Files are read again when they change: each new connection's handshake uses the files as they are
        then (connections already open keep their certificates). A changed set that cannot be used (a file
        half written or missing, a key that is not the certificate's) leaves the one in use in place, with
        one warning. PEM given as bytes never changes. Make new credentials for each port.

        Raises:
            InvalidTLSConfigError: there is no cert and key to serve with.
        """
        if self.cert is None or self.key is None:
            raise InvalidTLSConfigError(["a TLS server needs a cert and a key"])
        files = _ServerFiles(self.cert, self.key, self.ca)
        if not files.paths:
            return grpc.ssl_server_credentials(
                [(_read(self.key), _read(self.cert))],
                root_certificates=_read(self.ca) if self.ca is not None else None,
                require_client_auth=self.require_client_cert,
            )
        return grpc.dynamic_ssl_server_credentials(
            files.first(),
            files.fetch,  # type: ignore[arg-type]  # the stubs forget that None means "no change"
            require_client_authentication=self.require_client_cert,
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


class _ServerFiles:
    """A server's cert, key and ca, read again when one of their files changes.

    Each set of credentials needs its own: gRPC keeps the configuration `fetch` returns and asks again only
    for the next handshake, so one `_ServerFiles` behind two ports would move only one of them.
    """

    def __init__(self, cert: PEM, key: PEM, ca: PEM | None) -> None:
        self.cert, self.key, self.ca = cert, key, ca
        self.paths = [Path(value) for value in (cert, key, ca) if value is not None and not isinstance(value, bytes)]
        self._stamps: tuple[tuple[int, int, int] | None, ...] = ()
        self._lock = threading.Lock()  # gRPC calls `fetch` from several of its threads at once

    def first(self) -> grpc.ServerCertificateConfiguration:
        """The configuration to start with, from the files as they are now (stamped before they are read)."""
        self._stamps = self._stamp()
        return _configuration(_read(self.cert), _read(self.key), _read(self.ca) if self.ca is not None else None)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """A new configuration when the files changed and are whole again, else None (keep the one in use).

        gRPC calls this before each TLS handshake, from a thread of its own (holding the GIL, never on the
        event loop). One `stat` per file when nothing changed; the files are read and parsed only when one did,
        and a broken set is reported once, not at every handshake.
        """
        with self._lock:
            stamps = self._stamp()
            if stamps == self._stamps:
                return None
            self._stamps = stamps
            try:
                cert, key = _read(self.cert), _read(self.key)
                ca = _read(self.ca) if self.ca is not None else None
                _check_usable(cert, key, ca)
            except (OSError, ValueError) as error:
                problem = f"{error.filename}: {error.strerror or error}" if isinstance(error, OSError) else error
                logger.warning("TLS files %s changed but cannot be used (%s); still using the old ones", self, problem)
                return None
            logger.info("TLS files %s changed: new connections use them", self)
            return _configuration(cert, key, ca)

    def __str__(self) -> str:
        return ", ".join(map(str, self.paths))

    def _stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        stamps: list[tuple[int, int, int] | None] = []
        for path in self.paths:
            try:
                stat = path.stat()
            except OSError:
                stamps.append(None)  # missing: reading will say so, once
            else:
                stamps.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
        return tuple(stamps)


def _configuration(cert: bytes, key: bytes, ca: bytes | None) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)


def _check_usable(cert: bytes, key: bytes, ca: bytes | None) -> None:
    """Raise ValueError unless `cert` and `ca` are whole certificates and `key` is the key of `cert`."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    chain = _certificates(cert, "cert")
    if ca is not None:
        _certificates(ca, "ca")
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise ValueError(f"key: no unencrypted private key ({error})") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*spki) != chain[0].public_key().public_bytes(*spki):
        raise ValueError("key: not the key of the first certificate in cert")


def _certificates(data: bytes, name: str) -> list[x509.Certificate]:
    from cryptography import x509

    # The parser skips a block cut short, so a file written halfway could pass for a shorter chain.
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{name}: no PEM certificate") from None
    last_line = data.rstrip().rsplit(b"\n", 1)[-1]
    if len(found) != data.count(b"-----BEGIN CERTIFICATE-----") or not last_line.startswith(b"-----END "):
        raise ValueError(f"{name}: a certificate is cut short")
    return found


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
