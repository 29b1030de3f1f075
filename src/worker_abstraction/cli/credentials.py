"""Who a `wa` server lets in: the Authenticator its --auth-tokens file or its mTLS setting makes (None: it
trusts every caller)."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from worker_abstraction.cli.config import to_bool

if TYPE_CHECKING:
    from worker_abstraction.auth import Authenticator


def authenticator_of(args: argparse.Namespace) -> Authenticator | None:
    """The checks --auth-tokens (or WA_AUTH_TOKENS) asks for; with mTLS (--tls-client-auth) and no token
    file, the client certificates' principals (`ROLE/NAME`, as `wa certs init` issues them) are checked.

    Raises:
        InvalidTokenFileError (a ValueError): the file cannot be read or breaks its format.
        ValueError: --tls-client-auth is no boolean.
    """
    if args.auth_tokens:
        return _authenticator(args.auth_tokens)
    if to_bool(getattr(args, "tls_client_auth", None)):
        return _certificates_only()
    return None


@functools.cache
def _authenticator(path: str) -> Authenticator:
    from worker_abstraction.auth import Authenticator, TokenFile

    return Authenticator(TokenFile(Path(path)))


@functools.cache
def _certificates_only() -> Authenticator:
    from worker_abstraction.auth import Authenticator

    return Authenticator(None)
