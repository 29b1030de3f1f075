"""Run an orchestrator daemon until SIGINT/SIGTERM.

It watches the registry, queues tasks submitted over OrchestratorService (`wa submit --orchestrator`),
hands them to workers with free slots and streams their updates back. As soon as it serves, it prints one
line to stdout: `orchestrator listening on HOST:PORT`. A store another daemon holds is refused before
anything is served: one line on stderr naming the holder, exit code 2.
"""

from __future__ import annotations

import argparse
import logging

from worker_abstraction.cli import (
    UsageError,
    add_metrics_argument,
    add_registry_argument,
    serve_until_signal,
    serving_metrics,
)
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.credentials import authenticator_of
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import StoreInUseError
from worker_abstraction.observability.metrics import OrchestratorMetrics
from worker_abstraction.orchestrator.server import OrchestratorServer

NAME = "orchestrator"
SUMMARY = "run an orchestrator daemon with a shared task queue"
DEFAULT_LOG_LEVEL = "INFO"
EPILOG = """\
example:
  wa orchestrator --registry 127.0.0.1:50051 --port 50052 --max-queued 100000 --metrics-port 9464
  wa orchestrator --http-port 8080     # then open http://127.0.0.1:8080/ (operators only with --auth-tokens)
"""

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    add_registry_argument(parser, settings)
    parser.add_argument(
        "--host",
        default=settings.default("orchestrator_host"),
        help=settings.help("orchestrator_host", "interface to listen on"),
    )
    parser.add_argument(
        "--port",
        type=int,
        default=settings.default("orchestrator_port"),
        help=settings.help("orchestrator_port", "port to listen on, 0 picks a free one"),
    )
    add_metrics_argument(parser, settings)
    parser.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        default=settings.default("http_port"),
        help=settings.help(
            "http_port",
            "serve the web dashboard at http://HOST:PORT/ (https with --tls-cert), HOST being --host; 0 picks a "
            "port; with --auth-tokens only operators may use it",
        ),
    )
    parser.add_argument(
        "--max-queued",
        type=int,
        metavar="N",
        default=settings.default("max_queued"),
        help=settings.help(
            "max_queued", "tasks that may wait for a worker; past it submissions fail with RESOURCE_EXHAUSTED"
        ),
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        default=settings.default("store"),
        help=settings.help("store", "SQLite file that keeps accepted tasks across restarts; ':memory:' keeps nothing"),
    )
    parser.add_argument(
        "--aging",
        type=float,
        metavar="SECONDS",
        default=settings.default("aging"),
        help=settings.help("aging", "a waiting task gains one priority level per this many seconds (no starvation)"),
    )
    parser.add_argument(
        "--queue-without-workers",
        action="store_true",
        help="accept tasks for a capability no live worker offers yet: they wait (bounded by their queue "
        "timeout, visible in `wa queue`) instead of being refused with NoWorkerError",
    )


async def run(args: argparse.Namespace) -> int:
    """Serve until a signal, then stop and return 0."""
    if args.http_port is not None and not 0 <= args.http_port <= 65535:
        raise UsageError(f"--http-port must be 0..65535, got {args.http_port}")
    metrics = OrchestratorMetrics() if args.metrics_port is not None else None
    server = OrchestratorServer(
        args.registry,
        host=args.host,
        port=args.port,
        store_path=None if args.store == ":memory:" else args.store,
        max_queued=args.max_queued,
        aging_seconds=args.aging,
        queue_without_workers=args.queue_without_workers,
        tls=tls_of(args),
        auth=authenticator_of(args),
        metrics=metrics,
        http_port=args.http_port,
    )

    async def start() -> None:
        try:
            await server.start()
        except StoreInUseError as error:  # one store, one daemon: refused like an unusable flag, exit 2
            raise UsageError(str(error)) from error

    async with serving_metrics(metrics, args.metrics_port, args.host, tls=tls_of(args), auth=authenticator_of(args)):
        return await serve_until_signal(
            start=start,
            ready_line=lambda: f"orchestrator listening on {server.address}",
            ended=server.wait_for_termination,
            stop=lambda: server.stop(grace_seconds=1.0),
            what="orchestrator server",
        )
