"""The NATS flags `wa registry` and `wa orchestrator` share: --nats-creds, --nats-tls-ca, and URLs in --store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from worker_abstraction.cli import UsageError
from worker_abstraction.cli.config import Settings

if TYPE_CHECKING:
    from worker_abstraction.stores.jetstream import NatsOptions

NATS_SCHEMES = ("nats://", "tls://")


def add_nats_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument(
        "--nats-creds",
        metavar="FILE",
        default=settings.default("nats_creds"),
        help=settings.help("nats_creds", "NATS credentials file (JWT and NKey seed) for --store nats://"),
    )
    parser.add_argument(
        "--nats-tls-ca",
        metavar="FILE",
        default=settings.default("nats_tls_ca"),
        help=settings.help("nats_tls_ca", "CA file the NATS servers' certificates are checked against (TLS)"),
    )
    parser.add_argument(
        "--nats-replicas",
        type=int,
        metavar="N",
        default=1,
        help="copies of each NATS bucket and stream this creates: 1, or 3 on a 3-node cluster (one node may die)",
    )


def is_nats(store: str | None) -> bool:
    """Whether a --store value names NATS servers."""
    return bool(store) and str(store).strip().startswith(NATS_SCHEMES)


def nats_options_of(store: str, args: argparse.Namespace) -> NatsOptions:
    """The servers of a `nats://...` --store value with the credentials and CA flags.

    Raises:
        UsageError: a URL is malformed.
    """
    # Imported here: nats-py costs a process that does not use NATS its start-up time for nothing.
    from worker_abstraction.stores.jetstream import NatsOptions, NatsStoreError, parse_servers

    try:
        servers = parse_servers(store.strip())
    except NatsStoreError as exc:
        raise UsageError(f"--store: {exc}") from exc
    if not 1 <= args.nats_replicas <= 5:
        raise UsageError(f"--nats-replicas must be 1 to 5, got {args.nats_replicas}")
    return NatsOptions(
        servers,
        creds_file=Path(args.nats_creds) if args.nats_creds else None,
        tls_ca_file=Path(args.nats_tls_ca) if args.nats_tls_ca else None,
        replicas=args.nats_replicas,
    )
