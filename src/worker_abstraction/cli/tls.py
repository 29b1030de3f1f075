"""The TLSConfig every `wa` command uses, from --tls-cert/--tls-key/--tls-ca/--tls-client-auth (or WA_TLS_*)."""

from __future__ import annotations

import argparse

from worker_abstraction.cli.config import to_bool
from worker_abstraction.tls import TLSConfig


def tls_of(args: argparse.Namespace) -> TLSConfig | None:
    """TLS as the flags ask for it; None (plaintext) when no TLS setting is given.

    Raises:
        ValueError: --tls-client-auth (or WA_TLS_CLIENT_AUTH) is no boolean, or InvalidTLSConfigError: the
            files cannot be used.
    """
    require_client_cert = to_bool(args.tls_client_auth)
    if args.tls_cert is None and args.tls_key is None and args.tls_ca is None and not require_client_cert:
        return None
    return TLSConfig(cert=args.tls_cert, key=args.tls_key, ca=args.tls_ca, require_client_cert=require_client_cert)
