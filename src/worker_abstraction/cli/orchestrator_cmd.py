"""Run an orchestrator daemon until SIGINT/SIGTERM.

It watches the registry, queues tasks submitted over OrchestratorService (`wa submit --orchestrator`),
hands them to workers with free slots and streams their updates back. As soon as it serves, it prints one
line to stdout: `orchestrator listening on HOST:PORT`. A store another daemon holds is refused before
anything is served: one line on stderr naming the holder, exit code 2.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING

from worker_abstraction.cli import (
    UsageError,
    add_metrics_argument,
    add_registry_argument,
    serve_until_signal,
    serving_metrics,
    times,
)
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.credentials import authenticator_of
from worker_abstraction.cli.nats import add_nats_arguments, is_nats, nats_options_of
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import StoreInUseError
from worker_abstraction.observability.metrics import OrchestratorMetrics

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.home import TaskHome

NAME = "orchestrator"
SUMMARY = "run an orchestrator daemon with a shared task queue"
DEFAULT_LOG_LEVEL = "INFO"
EPILOG = """\
example:
  wa orchestrator --registry 127.0.0.1:50051 --port 50052 --max-queued 100000 --metrics-port 9464
  wa orchestrator --http-port 8080     # then open http://127.0.0.1:8080/ (operators only with --auth-tokens)
  wa orchestrator --store nats://10.0.0.3:4222   # replicas sharing tasks on NATS JetStream (>= 2.11)
"""
# How daemons on --store nats:// share their tasks (`--nats-home`): PartitionedHome, one lease per daemon over
# the partitions task ids hash to. The only way left (the queue home, a lease per task, is gone); the setting
# stays so that a configuration naming it keeps working.
NATS_HOMES = ("partitioned",)

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
        metavar="PATH|nats://HOST:PORT[,...]",
        default=settings.default("store"),
        help=settings.help(
            "store",
            "SQLite file that keeps accepted tasks across restarts (':memory:' keeps nothing), or NATS JetStream "
            "servers on which several daemons share their tasks",
        ),
    )
    add_nats_arguments(parser, settings)
    parser.add_argument(
        "--nats-home",
        type=str.lower,
        choices=NATS_HOMES,
        default=settings.default("nats_home"),
        help=settings.help(
            "nats_home",
            "with --store nats://: how the daemons share tasks: partitioned (each daemon leases a share of 32 "
            "partitions and runs their tasks; the only way now)",
        ),
    )
    parser.add_argument(
        "--lease-seconds",
        type=float,
        metavar="SECONDS",
        default=30.0,
        help="with --store nats://: a replica that stops answering loses its tasks to the others within this "
        "long (its lease on its partitions runs out); at least 1",
    )
    parser.add_argument(
        "--replica",
        metavar="NAME",
        help="with --store nats://: this daemon's name among the replicas (unique; default host-pid-random)",
    )
    parser.add_argument(
        "--aging",
        type=float,
        metavar="SECONDS",
        default=settings.default("aging"),
        help=settings.help("aging", "a waiting task gains one priority level per this many seconds (no starvation)"),
    )
    parser.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="CAPABILITY=RATE[,burst=N][,key=KEY]",
        help="at most RATE task starts of CAPABILITY (e.g. 20/s, 1000/h, 100/10s), per KEY if given (fairness, "
        "or param:NAME for an argument); tasks over it wait in the queue. Repeat for several capabilities",
    )
    parser.add_argument(
        "--concurrency-limit",
        action="append",
        default=[],
        metavar="CAPABILITY=N[,key=KEY][,strategy=S]",
        help="at most N tasks of CAPABILITY in flight, per KEY if given; over it a task waits (strategy=queue), "
        "is canceled (cancel_newest) or cancels the older ones of its key (cancel_in_progress)",
    )
    parser.add_argument(
        "--version-split",
        action="append",
        default=[],
        metavar="CAPABILITY:RANGE=WEIGHT[,RANGE=WEIGHT...]",
        help="split CAPABILITY's tasks between its versions by weight, e.g. summarize:1.0.0=90,^2=10 (a canary; "
        "`wa versions split` changes it while the daemon runs)",
    )
    parser.add_argument(
        "--retention",
        type=times.duration,
        metavar="DURATION",
        default=None,
        help="drop finished tasks (and workflow runs) this long after they finish, with their idempotency keys "
        "(e.g. 7d, 12h); default: keep them for good. Unfinished tasks never expire",
    )
    parser.add_argument(
        "--retention-for",
        action="append",
        default=[],
        metavar="CAPABILITY=DURATION",
        help="the same for one capability (e.g. wa.workflow=30d); repeat for several",
    )
    parser.add_argument(
        "--dead-letter-retention",
        type=times.duration,
        metavar="DURATION",
        default=None,
        help="drop dead letters this long after they were kept; default: keep them for good",
    )
    parser.add_argument(
        "--require-approval",
        action="append",
        default=[],
        metavar="CAPABILITY",
        help="every task of this capability waits for an operator's approval before it runs (`wa approve` / "
        "`wa deny`); repeat for more capabilities",
    )
    parser.add_argument(
        "--queue-without-workers",
        action="store_true",
        help="accept tasks for a capability no live worker offers yet: they wait (bounded by their queue "
        "timeout, visible in `wa queue`) instead of being refused with NoWorkerError",
    )


async def run(args: argparse.Namespace) -> int:
    """Serve until a signal, then stop and return 0."""
    from worker_abstraction.errors import InvalidParametersError
    from worker_abstraction.orchestrator.core.gates import ConcurrencyLimit, RateLimit
    from worker_abstraction.orchestrator.core.retention import Retention
    from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

    if args.http_port is not None and not 0 <= args.http_port <= 65535:
        raise UsageError(f"--http-port must be 0..65535, got {args.http_port}")
    if args.nats_home not in NATS_HOMES:  # argparse checks the flag's value, not one from WA_NATS_HOME
        gone = " (the queue home was removed: run its tasks to their end first)" if args.nats_home == "queue" else ""
        raise UsageError(
            f"--nats-home (WA_NATS_HOME, config nats_home) must be {' or '.join(NATS_HOMES)}, "
            f"got {args.nats_home[:40]!r}{gone}"
        )
    try:
        rate_limits = [RateLimit.from_text(text) for text in args.rate_limit]
        concurrency_limits = [ConcurrencyLimit.from_text(text) for text in args.concurrency_limit]
        per_capability = {}
        for text in args.retention_for:
            capability, equals, kept = text.partition("=")
            if not equals or not capability:
                raise InvalidParametersError([f"--retention-for {text[:60]!r} is not CAPABILITY=DURATION"])
            per_capability[capability] = times.duration(kept)
        retention = Retention(args.retention, per_capability, args.dead_letter_retention)
        splits = [_split_of(text) for text in args.version_split]
    except (InvalidParametersError, argparse.ArgumentTypeError) as error:
        said = "; ".join(error.problems) if isinstance(error, InvalidParametersError) else str(error)
        raise UsageError(f"limits or retention: {said}") from None
    metrics = OrchestratorMetrics() if args.metrics_port is not None else None
    home = await _nats_home(args) if is_nats(args.store) else None
    tls, auth = tls_of(args), authenticator_of(args)
    server = OrchestratorServer(
        args.registry,
        host=args.host,
        port=args.port,
        store_path=None if args.store == ":memory:" or home is not None else args.store,
        home=home,
        max_queued=args.max_queued,
        aging_seconds=args.aging,
        queue_without_workers=args.queue_without_workers,
        approval_required=args.require_approval,
        rate_limits=rate_limits,
        concurrency_limits=concurrency_limits,
        retention=retention,
        tls=tls,
        auth=auth,
        metrics=metrics,
    )
    if args.http_port is not None:
        # Imported here: starlette and uvicorn cost every other process their start-up time for nothing.
        from worker_abstraction.dashboard.server import DashboardServer

        DashboardServer.beside(server, port=args.http_port, auth=auth, tls=tls)

    async def start() -> None:
        try:
            await server.start()
        except StoreInUseError as error:  # one store, one daemon: refused like an unusable flag, exit 2
            raise UsageError(str(error)) from error
        for capability, weights in splits:
            await server.orchestrator.set_version_split(capability, weights)
        # What start-up made (modules, classes, the stores' clients) lives as long as the daemon: out of the
        # collector's sight, each of its passes no longer walks it again (a pass per few hundred tasks).
        gc.freeze()

    async with serving_metrics(metrics, args.metrics_port, args.host, tls=tls_of(args), auth=authenticator_of(args)):
        return await serve_until_signal(
            start=start,
            ready_line=lambda: f"orchestrator listening on {server.address}",
            ended=server.wait_for_termination,
            stop=lambda: server.stop(grace_seconds=1.0),
            what="orchestrator server",
        )


def _split_of(text: str) -> tuple[str, dict[str, int]]:
    """`summarize:1.0.0=90,^2=10` -> ("summarize", {"1.0.0": 90, "^2": 10}).

    Raises:
        InvalidParametersError: not CAPABILITY:RANGE=WEIGHT[,...], or a split that cannot be set.
    """
    from worker_abstraction.cli.versions_cmd import weights_of
    from worker_abstraction.errors import InvalidParametersError
    from worker_abstraction.orchestrator.core.splits import split_problems

    capability, colon, entries = text.partition(":")
    if not colon or not capability or not entries:
        raise InvalidParametersError([f"--version-split {text[:60]!r} is not CAPABILITY:RANGE=WEIGHT[,RANGE=WEIGHT]"])
    weights = weights_of(entries.split(","))
    problems = split_problems(capability, weights)
    if problems:
        raise InvalidParametersError(problems)
    return capability, weights


async def _nats_home(args: argparse.Namespace) -> TaskHome:
    """Open the shared tasks on the NATS servers --store names, as --nats-home says they are shared."""
    replica = args.replica or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    if not replica.isprintable() or len(replica) > 200:
        raise UsageError(f"--replica {replica[:40]!r}: a printable name of at most 200 characters")
    if not args.lease_seconds >= 1:
        raise UsageError(f"--lease-seconds must be at least 1, got {args.lease_seconds}")
    nats = nats_options_of(args.store, args)
    # Imported here: nats-py costs a daemon with a SQLite store its start-up time for nothing.
    from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome

    home = await PartitionedHome.open(nats, replica=replica, lease_seconds=args.lease_seconds)
    _log.info("tasks shared on NATS JetStream in partitions as replica %s", replica)
    return home
