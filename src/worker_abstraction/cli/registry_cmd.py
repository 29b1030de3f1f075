"""Run the worker registry until SIGINT/SIGTERM.

Workers register here and heartbeat; a background sweep lists workers silent for longer than
--suspect-after seconds as SUSPECT and evicts those silent for longer than --ttl seconds. As soon as it
serves, the command prints one line to stdout: `registry listening on HOST:PORT` (the real port, also
with --port 0).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from worker_abstraction.cli import UsageError, add_metrics_argument, serve_until_signal, serving_metrics
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.credentials import authenticator_of
from worker_abstraction.cli.nats import add_nats_arguments, is_nats, nats_options_of
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.observability.metrics import RegistryMetrics

if TYPE_CHECKING:
    from worker_abstraction.stores.base import WorkerStore

NAME = "registry"
SUMMARY = "run the worker registry"
DEFAULT_LOG_LEVEL = "INFO"
EPILOG = """\
example:
  wa registry --host 127.0.0.1 --port 50051 --ttl 30 --suspect-after 20
  wa registry --port 50051 --store nats://127.0.0.1:4222   # replicas on one NATS JetStream bucket
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
    parser.add_argument(
        "--store",
        metavar="memory|nats://HOST:PORT[,...]",
        default=settings.default("registry_store"),
        help=settings.help(
            "registry_store",
            "where workers are kept: memory (this process only), or a NATS JetStream KV bucket that several "
            "registry replicas share",
        ),
    )
    add_nats_arguments(parser, settings)


async def run(args: argparse.Namespace) -> int:
    """Serve until a signal, then stop and return 0.

    Raises:
        UsageError: the timings do not fit together (e.g. --suspect-after not below --ttl).
    """
    metrics = RegistryMetrics() if args.metrics_port is not None else None
    async with worker_store(args) as store:
        return await _serve(args, metrics, store)


async def _serve(args: argparse.Namespace, metrics: RegistryMetrics | None, store: WorkerStore | None) -> int:
    from worker_abstraction.registry.server import RegistryServer

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
            store=store,
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


@contextlib.asynccontextmanager
async def worker_store(args: argparse.Namespace) -> AsyncIterator[WorkerStore | None]:
    """The store --store names (None: the registry's own memory), closed on the way out.

    Raises:
        UsageError: the store is neither `memory` nor NATS URLs.
        NatsStoreError: NATS cannot be reached, or is older than 2.11.
    """
    spec = (args.store or "memory").strip()
    if spec == "memory":
        yield None
        return
    if not is_nats(spec):
        raise UsageError(f"--store {spec!r}: expected memory or nats://HOST:PORT[,nats://HOST:PORT...]")
    options = nats_options_of(spec, args)
    # Imported here: nats-py costs a registry kept in memory its start-up time for nothing.
    from worker_abstraction.stores.jetstream import JetStreamWorkerStore

    store = await JetStreamWorkerStore.open(options, key_ttl_seconds=args.ttl)
    _log.info("workers kept in NATS JetStream at %s", ", ".join(options.servers))
    try:
        yield store
    finally:
        await store.aclose()
