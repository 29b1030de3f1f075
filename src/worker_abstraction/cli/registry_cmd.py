"""Run the worker registry until SIGINT/SIGTERM.

Workers register here and heartbeat; a background sweep lists workers silent for longer than
--suspect-after seconds as SUSPECT and evicts those silent for longer than --ttl seconds. As soon as it
serves, the command prints one line to stdout: `registry listening on HOST:PORT` (the real port, also
with --port 0).
"""

from __future__ import annotations

import argparse
import logging

from worker_abstraction import RegistryServer
from worker_abstraction.cli import UsageError, add_metrics_argument, serve_until_signal, serving_metrics
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.credentials import authenticator_of
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.observability.metrics import RegistryMetrics

NAME = "registry"
SUMMARY = "run the worker registry"
DEFAULT_LOG_LEVEL = "INFO"
EPILOG = """\
example:
  wa registry --host 127.0.0.1 --port 50051 --ttl 30 --suspect-after 20
"""

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument(
        "--host",
        default=settings.default("registry_host"),
        help=settings.help("registry_host", "interface to listen on"),
    )
    parser.add_argument(
        "--port",
        type=int,
        default=settings.default("registry_port"),
        help=settings.help("registry_port", "port to listen on, 0 picks a free one"),
    )
    add_metrics_argument(parser, settings)
    parser.add_argument(
        "--ttl",
        type=float,
        metavar="SECONDS",
        default=settings.default("ttl"),
        help=settings.help("ttl", "seconds without a heartbeat before a worker is evicted"),
    )
    parser.add_argument(
        "--suspect-after",
        type=float,
        metavar="SECONDS",
        default=settings.default("suspect_after"),
        help=settings.help(
            "suspect_after",
            "seconds without a heartbeat before a worker is listed as SUSPECT, below --ttl; unset: two thirds of --ttl",
        ),
    )
    parser.add_argument(
        "--sweep-interval",
        type=float,
        metavar="SECONDS",
        default=settings.default("sweep_interval"),
        help=settings.help("sweep_interval", "seconds between eviction sweeps; unset: a quarter of --ttl, at most 5"),
    )


async def run(args: argparse.Namespace) -> int:
    """Serve until a signal, then stop and return 0.

    Raises:
        UsageError: the timings do not fit together (e.g. --suspect-after not below --ttl).
    """
    metrics = RegistryMetrics() if args.metrics_port is not None else None
    try:
        server = RegistryServer(
            host=args.host,
            port=args.port,
            ttl_seconds=args.ttl,
            suspect_after_seconds=args.suspect_after,
            sweep_interval_seconds=args.sweep_interval,
            tls=tls_of(args),
            auth=authenticator_of(args),
            metrics=metrics,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    async with serving_metrics(metrics, args.metrics_port, args.host, tls=tls_of(args), auth=authenticator_of(args)):
        return await serve_until_signal(
            start=server.start,
            ready_line=lambda: f"registry listening on {server.address}",
            ended=server.wait_for_termination,
            stop=lambda: server.stop(grace_seconds=1.0),
            what="registry server",
        )
