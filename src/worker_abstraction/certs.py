"""Development certificates: a CA and the certificates each part presents (what `wa certs init` writes).

Each certificate names its holder's principal twice: as its common name `ROLE/NAME` and as a URI SAN
`wa://ROLE/NAME` (e.g. `wa://worker/worker`). Certificates of parts that serve (the registry and orchestrator
share `server`, workers have `worker`) also carry the SANs localhost and 127.0.0.1 and may act as clients
too (the daemon and workers call the registry); `client` and `operator` only act as clients.

These are for development and tests: one CA key on disk next to everything it signed, ECDSA P-256 keys.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOCAL_HOSTS = ("localhost", "127.0.0.1")
DEFAULT_VALID_DAYS = 365


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True, slots=True)
class Identity:
    """One certificate `wa certs init` writes: file stem, role and name, and whether it serves."""

    stem: str
    role: str
    name: str
    serves: bool


IDENTITIES = (
    Identity("server", "orchestrator", "server", serves=True),
    Identity("worker", "worker", "worker", serves=True),
    Identity("client", "client", "client", serves=False),
    Identity("operator", "operator", "operator", serves=False),
)


def new_ca(common_name: str = "worker-abstraction development CA", *, valid_days: int = DEFAULT_VALID_DAYS) -> Issued:
    """A self-signed CA certificate and key, valid from now for `valid_days`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(_cert_pem(cert), _key_pem(key))


def issue(
    ca: Issued,
    role: str,
    name: str,
    *,
    hosts: Sequence[str] = (),
    serves: bool = False,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Issued:
    """A certificate for the principal `wa://ROLE/NAME`, signed by `ca`.

    Args:
        ca: the signing CA (from `new_ca`).
        role: the principal's role, e.g. "worker".
        name: the principal's name within the role.
        hosts: DNS names and IP addresses to put in the SAN (a server's addresses).
        serves: usable as a server certificate as well as a client one.
        not_before: start of validity (default: five minutes ago).
        not_after: end of validity (default: `DEFAULT_VALID_DAYS` from now).
    """
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key must be an EC key made by new_ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(f"wa://{role}/{name}")]
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if serves else [])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{role}/{name}")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after or now + datetime.timedelta(days=DEFAULT_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(_cert_pem(cert), _key_pem(key))


def planned_files(directory: Path) -> list[Path]:
    """Every file `init_dir` writes into `directory`."""
    stems = ["ca"] + [identity.stem for identity in IDENTITIES]
    return [directory / f"{stem}{suffix}" for stem in stems for suffix in (".pem", ".key")]


def init_dir(directory: Path, *, force: bool = False, valid_days: int = DEFAULT_VALID_DAYS) -> list[Path]:
    """Write a development CA and a certificate and key for each of `IDENTITIES` into `directory`.

    Keys are written with mode 0600. Returns the files written.

    Raises:
        FileExistsError: some of the files exist and `force` is not set (nothing is written).
    """
    files = planned_files(directory)
    existing = [str(path) for path in files if path.exists()]
    if existing and not force:
        raise FileExistsError(f"refusing to overwrite {', '.join(existing)} (use --force)")
    directory.mkdir(parents=True, exist_ok=True)
    ca = new_ca(valid_days=valid_days)
    until = _now() + datetime.timedelta(days=valid_days)
    issued = {"ca": ca} | {
        identity.stem: issue(
            ca,
            identity.role,
            identity.name,
            hosts=LOCAL_HOSTS if identity.serves else (),
            serves=identity.serves,
            not_after=until,
        )
        for identity in IDENTITIES
    }
    for stem, pair in issued.items():
        _write(directory / f"{stem}.pem", pair.cert_pem, 0o644)
        _write(directory / f"{stem}.key", pair.key_pem, 0o600)
    return files


def _write(path: Path, data: bytes, mode: int) -> None:
    # Opened with the mode so a key is never readable by others, not even between write and chmod;
    # chmod too, as an existing file (--force) keeps its old mode.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, mode)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
