"""Ask a server (registry, worker or orchestrator daemon) whether it serves: the standard gRPC health check.

It prints the status the server reports, for itself as a whole or for one --service: SERVING,
NOT_SERVING (e.g. a worker draining before it exits, a daemon whose task store cannot write) or
SERVICE_UNKNOWN (the server does not serve that service). With --watch it prints the status, then each
change, until interrupted; the watch ends when the server goes away.

Health checks need no credentials, but the TLS settings (--tls-ca, and --tls-cert/--tls-key under mTLS)
are those of the other commands.

exit codes: 0 SERVING; 1 NOT_SERVING, SERVICE_UNKNOWN or any other refusal; 2 the server cannot be
reached (or a usage error); 130 interrupted (--watch ends so).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from worker_abstraction import tls
from worker_abstraction.cli import UsageError, add_registry_argument, cannot_reach
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.tls import tls_of

if TYPE_CHECKING:
    from grpc_health.v1 import health_pb2_grpc

NAME = "health"
SUMMARY = "check whether a server serves (grpc.health.v1)"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa health                                   # the configured registry (and daemon, if one is configured)
  wa health 127.0.0.1:50051
  wa health 127.0.0.1:50052 --service worker_abstraction.OrchestratorService
  wa health 127.0.0.1:50061 --watch
  wa health registry.internal:50051 --tls-ca pki/ca.pem
"""

SERVING, NOT_SERVING, SERVICE_UNKNOWN = "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"
EXIT_SERVING, EXIT_NOT_SERVING, EXIT_UNREACHABLE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument(
        "address",
        metavar="ADDRESS",
        nargs="?",
        help="the server, as HOST:PORT (unset: the configured registry, and the orchestrator daemon if one is "
        "configured: --registry / WA_REGISTRY / registry, --orchestrator / WA_ORCHESTRATOR / orchestrator)",
    )
    add_registry_argument(parser, settings)
    parser.add_argument(
        "--orchestrator",
        metavar="HOST:PORT",
        default=settings.default("orchestrator"),
        help=settings.help("orchestrator", "orchestrator daemon address, checked when no ADDRESS is given"),
    )
    parser.add_argument(
        "--service",
        metavar="NAME",
        default="",
        help="a service's full name (e.g. worker_abstraction.WorkerService); unset: the server as a whole",
    )
    parser.add_argument("--watch", action="store_true", help="print the status, then each change, until interrupted")
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=5.0,
        help="seconds to wait for the (first) answer",
    )


def status_name(status: int) -> str:
    """SERVING, NOT_SERVING or SERVICE_UNKNOWN; UNKNOWN for a server that says nothing definite, and
    UNKNOWN(N) for a number the protocol does not define."""
    from grpc_health.v1 import health_pb2

    try:
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    except ValueError:
        return f"UNKNOWN({status})"
    return name


def exit_code(status: str) -> int:
    return EXIT_SERVING if status == SERVING else EXIT_NOT_SERVING


async def run(args: argparse.Namespace) -> int:
    """Check (or watch) the server's health and print it; the exit code says what was found (the worst, when
    no ADDRESS is given and the configured registry and daemon are both checked)."""
    if args.address:
        return await _check(args.address, args)
    targets = [("registry", args.registry)] + ([("orchestrator", args.orchestrator)] if args.orchestrator else [])
    if args.watch and len(targets) > 1:
        raise UsageError("--watch follows one server: give its ADDRESS")
    if len(targets) == 1:
        return await _check(targets[0][1], args)
    worst = EXIT_SERVING
    for what, address in targets:
        print(f"{what} {address}: ", end="", flush=True)
        code = await _check(address, args)
        if code == EXIT_UNREACHABLE:
            print("UNREACHABLE", flush=True)
        worst = max(worst, code)
    return worst


async def _check(address: str, args: argparse.Namespace) -> int:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from worker_abstraction import _rpc

    security = tls_of(args)
    args.address = address
    request = health_pb2.HealthCheckRequest(service=args.service)
    async with _rpc.channel(address, security) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            if args.watch:
                return await _watch(stub, request, args.timeout)
            response = await stub.Check(request, timeout=args.timeout)
        except aio.AioRpcError as error:
            return _failed(error.code(), error.details() or "", args, security)
        except TimeoutError:
            return _failed(grpc.StatusCode.DEADLINE_EXCEEDED, "", args, security)
    status = status_name(response.status)
    print(status, flush=True)
    return exit_code(status)


async def _watch(stub: health_pb2_grpc.HealthStub, request: Any, timeout_seconds: float) -> int:
    """Print the status, then each change; the exit code of the last one if the server ends the stream.

    Raises:
        AioRpcError: the stream failed (the server went away); TimeoutError: no first answer in time.
    """
    from worker_abstraction import _rpc

    call = stub.Watch(request)
    try:
        # The deadline holds for the first answer only: a watch then lasts as long as the server does.
        async with asyncio.timeout(timeout_seconds):
            response = await call.read()
        status = NOT_SERVING  # (a stream that ends before its first answer)
        while response is not _rpc.EOF:
            status = status_name(response.status)
            print(status, flush=True)
            response = await call.read()
    finally:
        call.cancel()
    return exit_code(status)


def _failed(code: grpc.StatusCode, details: str, args: argparse.Namespace, security: tls.TLSConfig | None) -> int:
    from worker_abstraction import _rpc

    if code is grpc.StatusCode.NOT_FOUND:  # what Check answers for a service the server does not serve
        print(SERVICE_UNKNOWN, flush=True)
        return EXIT_NOT_SERVING
    if code in _rpc.TRANSPORT_CODES or code is grpc.StatusCode.CANCELLED:
        reason = (
            f"no answer within {args.timeout:g}s"
            if code is grpc.StatusCode.DEADLINE_EXCEEDED
            else f"{code.name}: {details}{tls.explain(details, security)}"
        )
        print(cannot_reach("server", args.address, reason), file=sys.stderr)
        return EXIT_UNREACHABLE
    if code is grpc.StatusCode.UNIMPLEMENTED:
        print(f"the server at {args.address} offers no health checks (grpc.health.v1)", file=sys.stderr)
        return EXIT_NOT_SERVING
    print(f"the server at {args.address} refused the health check: {code.name}: {details}", file=sys.stderr)
    return EXIT_NOT_SERVING
