"""Make development certificates for TLS and mTLS.

  wa certs init DIR [--force] [--days N]

writes into DIR a CA (ca.pem, ca.key) and a certificate and key for each part: server (the registry and
the orchestrator daemon), worker, client (scripts, `wa submit`) and operator (`wa task`, `wa dlq`, ...).
Each names its principal as its common name ROLE/NAME and as a URI SAN wa://ROLE/NAME; server and
worker certificates also name localhost and 127.0.0.1. Keys are written with mode 0600. Existing files
are kept unless --force is given.

These are for development: for production, issue certificates from your own CA.

exit codes: 0 written; 1 files exist (without --force) or cannot be written; 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker_abstraction.cli.config import Settings

NAME = "certs"
SUMMARY = "make a development CA and certificates for TLS / mTLS"
DEFAULT_LOG_LEVEL = "WARNING"
USES_TLS = False  # makes the files the TLS settings name
EPILOG = """\
example:
  wa certs init ./pki
  wa registry --tls-cert pki/server.pem --tls-key pki/server.key --tls-ca pki/ca.pem --tls-client-auth
"""


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        help="write a development CA and server, worker, client and operator certificates into DIR",
        description="Write a development CA and server, worker, client and operator certificates into DIR.",
        formatter_class=parser.formatter_class,
    )
    init.add_argument("directory", metavar="DIR", help="where to write (made if missing)")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.add_argument("--days", type=int, default=365, help="days the certificates stay valid (default: 365)")


async def run(args: argparse.Namespace) -> int:
    from worker_abstraction import certs  # `cryptography` loads only for this command

    directory = Path(args.directory)
    try:
        written = certs.init_dir(directory, force=args.force, valid_days=args.days)
    except (FileExistsError, OSError) as exc:
        print(f"wa certs: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(usage(directory))
    return 0


def usage(directory: Path) -> str:
    """How to run everything with mTLS using the certificates in `directory`."""
    ca = directory / "ca.pem"

    def flags(stem: str) -> str:
        return f"--tls-cert {directory / stem}.pem --tls-key {directory / stem}.key --tls-ca {ca}"

    return f"""
mTLS everywhere (drop --tls-client-auth for TLS without client certificates):
  wa registry {flags("server")} --tls-client-auth
  wa orchestrator {flags("server")} --tls-client-auth
  wa worker MODULE:CLASS {flags("worker")} --tls-client-auth
  wa submit CAPABILITY ... {flags("client")}
  wa workers {flags("operator")}
or set WA_TLS_CERT, WA_TLS_KEY, WA_TLS_CA, WA_TLS_CLIENT_AUTH=1 (or tls_cert, ... in wa.toml).
Keep {directory / "ca.key"} private: it signs certificates everyone here trusts."""
