"""Make a principal's token and its entry for a token file.

  wa token new NAME --role ROLE [--capability PATTERN ...] [--calls-per-second N]

prints on stdout the [[principal]] entry to append to the servers' token file: the token's SHA-256
digest (`token_sha256`) and the public key workers check its signed credentials with (`public_key`), not
the token itself; the token goes to stderr (or to --token-file, written with mode 0600), once, for the
principal alone. Give each principal one role: the daemon `orchestrator`, each worker `worker`, a program
that submits `client`, people who run the system `operator`.

exit codes: 0 made; 1 --token-file exists or cannot be written; 2 a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
from pathlib import Path

from worker_abstraction.cli import UsageError
from worker_abstraction.cli.config import Settings

NAME = "token"
SUMMARY = "make a principal's token and its token-file entry (digest and public key)"
DEFAULT_LOG_LEVEL = "WARNING"
USES_TLS = False  # talks to no server
EPILOG = """\
example:
  wa token new orchestrator/daemon --role orchestrator --token-file daemon.token >> tokens.toml
  wa token new client/alice --role client --capability 'text.*' >> tokens.toml
  WA_TOKEN=$(cat daemon.token) wa orchestrator --auth-tokens tokens.toml
"""
_ROLES = ("worker", "orchestrator", "client", "operator")


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    new = actions.add_parser(
        "new",
        help="make a token for NAME and print its token-file entry",
        description="Make a random token for NAME; print its [[principal]] entry on stdout, the token on stderr.",
        formatter_class=parser.formatter_class,
    )
    new.add_argument("name", metavar="NAME", help="the principal's name, e.g. client/alice")
    new.add_argument("--role", action="append", choices=_ROLES, required=True, help="its role (one is best)")
    new.add_argument(
        "--capability", action="append", default=[], metavar="PATTERN", help="limit it to these capabilities"
    )
    new.add_argument("--calls-per-second", type=float, default=0.0, help="its rate limit (0: the server's default)")
    new.add_argument("--token-file", metavar="PATH", help="write the token here (mode 0600) instead of to stderr")
    new.add_argument("--json", action="store_true", help="print {name, token, token_sha256, public_key} instead")


def entry(name: str, token: str, roles: list[str], capabilities: list[str], calls_per_second: float) -> str:
    """The token file's [[principal]] entry of `token` (its digest and public key, never the token)."""
    from worker_abstraction import signing

    lines = [
        "[[principal]]",
        f"name = {json.dumps(name)}",
        f"roles = {json.dumps(sorted(set(roles)))}",
        f'token_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"',
        f'public_key = "{signing.public_key(token).hex()}"',
    ]
    if capabilities:
        lines.append(f"capabilities = {json.dumps(capabilities)}")
    if calls_per_second:
        lines.append(f"calls_per_second = {calls_per_second:g}")
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> int:
    if not args.name.strip() or any(c in args.name for c in '"\\\n\r\t'):
        raise UsageError(f"NAME must be a plain name such as client/alice, got {args.name[:40]!r}")
    if not 0 <= args.calls_per_second <= 1e6:
        raise UsageError("--calls-per-second must be in 0..1000000")
    if len(set(args.role)) > 1:
        print(f"wa token: note: {args.name} gets {len(set(args.role))} roles; one each is safer", file=sys.stderr)
    token = secrets.token_urlsafe(32)
    text = entry(args.name, token, args.role, args.capability, args.calls_per_second)
    if args.token_file:
        try:
            descriptor = os.open(args.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            print(f"wa token: error: cannot write {args.token_file}: {exc.strerror}", file=sys.stderr)
            return 1
        with os.fdopen(descriptor, "w") as out:
            out.write(token + "\n")
    if args.json:
        from worker_abstraction import signing

        print(
            json.dumps(
                {
                    "name": args.name,
                    "token": None if args.token_file else token,
                    "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                    "public_key": signing.public_key(token).hex(),
                }
            )
        )
        return 0
    print(text, end="")
    if not args.token_file:
        print(f"wa token: the token of {args.name} (shown once; give it to that principal alone):", file=sys.stderr)
        print(token, file=sys.stderr)
    else:
        print(f"wa token: wrote the token of {args.name} to {Path(args.token_file)}", file=sys.stderr)
    return 0
