"""Who a `wa` server lets in: the Authenticator its --auth-tokens file makes (None: it trusts every caller)."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from worker_abstraction.auth import Authenticator, TokenFile


def authenticator_of(args: argparse.Namespace) -> Authenticator | None:
    """The checks --auth-tokens (or WA_AUTH_TOKENS) asks for.

    Raises:
        InvalidTokenFileError (a ValueError): the file cannot be read or breaks its format.
    """
    return _authenticator(args.auth_tokens) if args.auth_tokens else None


@functools.cache
def _authenticator(path: str) -> Authenticator:
    return Authenticator(TokenFile(Path(path)))
