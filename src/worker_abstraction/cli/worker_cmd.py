"""Run a worker class: serve its capabilities, register with the registry, heartbeat.

WORKER is `package.module:ClassName` or `path/to/file.py:ClassName`, a BaseWorker subclass; the current
directory is put first on the import path, so a module next to you imports as is (a file's own directory,
for a file). A module that fails as it imports is reported in one line (exit 2), not a traceback. As soon
as it serves, the command prints one line to stdout: `worker WORKER_ID listening on HOST:PORT` (the
advertised address). On SIGINT/SIGTERM it stops
accepting tasks, lets running ones finish within --grace seconds, deregisters and exits 0.

It logs to stderr at INFO by default, one line when a task is received and one when it ends: succeeded (with
its duration), failed (ERROR, with the handler's traceback when it raised), or canceled (with the reason).
--log-level WARNING keeps only failures and tasks cut short.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from worker_abstraction.cli import UsageError, add_metrics_argument, serve_until_signal, serving_metrics
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.credentials import authenticator_of
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import InvalidCapabilityError
from worker_abstraction.observability.metrics import WorkerMetrics

if TYPE_CHECKING:
    from worker_abstraction.worker.base import BaseWorker

NAME = "worker"
SUMMARY = "run a worker class (package.module:ClassName)"
DEFAULT_LOG_LEVEL = "INFO"  # the level of each task's received and succeeded lines (worker/tasklog.py)
EPILOG = """\
example (from the repository root):
  wa worker examples.seed_worker:SeedWorker --port 0 --registry 127.0.0.1:50051 --tag demo
"""

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    served = parser.add_mutually_exclusive_group(required=True)  # what the worker serves: one of these
    served.add_argument("worker", metavar="WORKER", nargs="?", help="the worker class, as package.module:ClassName")
    served.add_argument("--a2a", metavar="URL", help="serve the skills of the A2A agent at URL (no WORKER)")
    served.add_argument(
        "--mcp", metavar="COMMAND_OR_URL", help="serve the tools of the MCP server COMMAND_OR_URL (no WORKER)"
    )
    add_worker_options(parser, settings)


def add_worker_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    """Every flag of a worker process (`wa worker`, `wa inbox serve`)."""
    parser.add_argument(
        "--registry",
        metavar="HOST:PORT[,HOST:PORT...]",
        default=settings.default("registry"),
        help=settings.help(
            "registry",
            "registry address, several (replicas) tried in order; an empty string serves without registering",
        ),
    )
    parser.add_argument(
        "--host", default=settings.default("worker_host"), help=settings.help("worker_host", "interface to listen on")
    )
    parser.add_argument(
        "--port",
        type=int,
        default=settings.default("worker_port"),
        help=settings.help("worker_port", "port to listen on, 0 picks a free one"),
    )
    add_metrics_argument(parser, settings)
    parser.add_argument(
        "--advertise-host",
        metavar="HOST",
        default=settings.default("advertise_host"),
        help=settings.help(
            "advertise_host",
            "host put in the registered address when --host is not reachable as is (e.g. 0.0.0.0); "
            "unset: --host, or this machine's name for a wildcard --host",
        ),
    )
    parser.add_argument(
        "--name",
        default=settings.default("worker_name"),
        help=settings.help("worker_name", "worker name; unset: the class name"),
    )
    parser.add_argument(
        "--worker-id",
        metavar="ID",
        default=settings.default("worker_id"),
        help=settings.help("worker_id", "stable worker id; unset: a new random id"),
    )
    parser.add_argument("--tag", action="append", default=[], help="a tag to register with (repeatable)")
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        metavar="SECONDS",
        default=settings.default("heartbeat_interval"),
        help=settings.help("heartbeat_interval", "seconds between heartbeats; unset: what the registry advises"),
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        metavar="N",
        default=settings.default("max_concurrent"),
        help=settings.help(
            "max_concurrent",
            "task slots (0: no limit); the orchestrator queues tasks past them; unset: the class's setting, "
            "else one per thread (CPU count + 4, at most 32) with a plain def capability, 100 if all are async",
        ),
    )
    parser.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        default=settings.default("grace"),
        help=settings.help("grace", "seconds running tasks get to finish on SIGINT/SIGTERM"),
    )


def load_worker_class(spec: str) -> type[BaseWorker]:
    """Import `package.module:ClassName` from the current directory or the installed packages, or
    `path/to/file.py:ClassName` from a file.

    Raises:
        UsageError: the spec is malformed, does not import, or names something that is not a BaseWorker.
    """
    from worker_abstraction.worker.base import BaseWorker

    module_name, _, attribute = spec.rpartition(":")
    if not module_name or not attribute:
        raise UsageError(f"worker {spec!r} must look like package.module:ClassName or path/to/file.py:ClassName")
    cwd = os.getcwd()
    if sys.path[:1] != [cwd]:
        sys.path.insert(0, cwd)  # like uvicorn: a module in the current directory imports as is
    try:
        target: object = _import(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r} (from {cwd}): {exc}") from exc
    except InvalidCapabilityError as exc:
        raise UsageError(f"{module_name!r} defines an invalid capability: {exc}") from exc
    except Exception as exc:  # the module's own code failed as it ran: say where, without a traceback
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise UsageError(
            f"importing {module_name!r} failed at {where.filename}:{where.lineno}: {type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise UsageError(f"{module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, BaseWorker)):
        raise UsageError(f"{spec!r} is not a BaseWorker subclass")
    return target


def _import(module_name: str) -> ModuleType:
    """A module by its dotted name, or from a file when it names one (`./workers/ocr.py`)."""
    if not (module_name.endswith(".py") or os.sep in module_name or "/" in module_name):
        return importlib.import_module(module_name)
    path = Path(module_name).resolve()
    if not path.is_file():
        raise ImportError(f"no such file: {path}")
    sys.path.insert(0, str(path.parent))  # (so the file's own sibling imports work, as `python file.py` has it)
    name = path.stem
    loaded = importlib.util.spec_from_file_location(name, path)
    if loaded is None or loaded.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(loaded)
    sys.modules[name] = module
    loaded.loader.exec_module(module)
    return module


async def run(args: argparse.Namespace) -> int:
    """Start the worker, serve until a signal, then stop it gracefully and return 0."""
    if args.mcp:
        if args.worker:
            raise UsageError("give WORKER or --mcp COMMAND_OR_URL, not both")
        from worker_abstraction.interop.mcp_worker import McpWorker

        return await run_worker(McpWorker.serving(args.mcp), args)
    if args.a2a:
        if args.worker:
            raise UsageError("give WORKER or --a2a URL, not both")
        from worker_abstraction.interop.a2a_worker import A2AWorker

        return await run_worker(A2AWorker.serving(args.a2a), args)
    if not args.worker:
        raise UsageError(
            "WORKER is required (package.module:ClassName), unless --a2a URL or --mcp COMMAND_OR_URL is given"
        )
    return await run_worker(load_worker_class(args.worker), args)


async def run_worker(worker_class: type[BaseWorker], args: argparse.Namespace) -> int:
    """Run `worker_class` with the flags of `add_worker_options` until a signal; returns 0."""
    metrics = WorkerMetrics() if args.metrics_port is not None else None
    worker = worker_class(
        registry=args.registry or None,
        host=args.host,
        port=args.port,
        name=args.name,
        worker_id=args.worker_id,
        tags=tuple(args.tag),
        heartbeat_interval_seconds=args.heartbeat_interval,
        advertise_host=args.advertise_host,
        max_concurrent_tasks=args.max_concurrent,
        tls=tls_of(args),
        auth=authenticator_of(args),
        metrics=metrics,
    )
    async with serving_metrics(metrics, args.metrics_port, args.host, tls=tls_of(args), auth=authenticator_of(args)):
        return await serve_until_signal(
            start=worker.start,
            ready_line=lambda: f"worker {worker.worker_id} listening on {worker.address}",
            ended=worker.wait_stopped,
            stop=lambda: worker.stop(grace_seconds=args.grace),
            what="worker",
        )
