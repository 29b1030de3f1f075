"""Run one task on a worker that offers CAPABILITY, print its status transitions and its output.

Each --param is KEY=VALUE; VALUE is parsed as JSON (`n=3` is a number, `flags=[1,2]` a list,
`opts={"a":1}` an object, `s='"3"'` the string "3"), and when it is not valid JSON it is taken as a plain
string (`text=hello world`). The first line names the task and the worker running it, then one line per
status update (PENDING, RUNNING, COMPLETED, ...), then the output as JSON; errors go to stderr.

exit codes: 0 completed; 1 failed, canceled or timed out; 2 not run (no live worker offers the capability,
the registry is unreachable, the parameters are invalid, the queue is full, the worker rejected the task, or
a usage error).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from worker_abstraction import AsyncOrchestrator, AsyncTaskHandle, TaskStatus, TaskUpdate
from worker_abstraction.cli import UsageError, add_registry_argument
from worker_abstraction.cli.config import Settings
from worker_abstraction.errors import (
    InvalidParametersError,
    NoWorkerError,
    OrchestratorUnavailableError,
    QueueFullError,
    RegistryUnavailableError,
    TaskRejectedError,
    WorkerAbstractionError,
)
from worker_abstraction.orchestrator.remote import RemoteOrchestrator

NAME = "submit"
SUMMARY = "run one task and stream its status"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa submit dummy_processor --param input=hello
  wa submit word_count --param text="the quick brown fox" --param min_len=4 --timeout 10
"""

EXIT_COMPLETED, EXIT_FAILED, EXIT_NOT_RUN = 0, 1, 2


def parse_param(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` to `(KEY, value)`: VALUE decoded as JSON, or kept as a string when it is not JSON."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("capability", metavar="CAPABILITY", help="name of the capability to run")
    parser.add_argument(
        "--param",
        "-p",
        dest="params",
        action="append",
        default=[],
        type=parse_param,
        metavar="KEY=VALUE",
        help="a parameter (repeatable); VALUE is JSON, or a plain string when not valid JSON",
    )
    add_registry_argument(parser, settings)
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=settings.default("task_timeout"),
        help=settings.help("task_timeout", "seconds the task may take before it counts as timed out"),
    )
    parser.add_argument(
        "--orchestrator",
        metavar="HOST:PORT",
        default=settings.default("orchestrator"),
        help=settings.help(
            "orchestrator",
            "submit through this orchestrator daemon (its shared queue); unset: run an orchestrator in this process",
        ),
    )
    parser.add_argument("--priority", type=int, default=0, help="higher runs first when workers are busy")
    parser.add_argument(
        "--require-tag", action="append", default=[], metavar="TAG", help="run only on workers with this tag"
    )
    parser.add_argument("--prefer-tag", action="append", default=[], metavar="TAG", help="prefer workers with this tag")
    parser.add_argument("--worker-id", metavar="ID", default=None, help="run only on this worker")
    parser.add_argument(
        "--fairness-key", metavar="KEY", default="", help="e.g. a tenant: keys of equal priority take turns"
    )
    parser.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        default=settings.default("wait"),
        help=settings.help(
            "wait", "seconds to wait for a worker offering CAPABILITY to appear (in-process orchestrator)"
        ),
    )


def _params(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in pairs:
        if key in params:
            raise UsageError(f"parameter {key!r} given more than once")
        params[key] = value
    return params


def _describe(update: TaskUpdate) -> str:
    line = update.status.name
    if update.status is TaskStatus.RUNNING and (update.progress or update.progress_message):
        line += f" {update.progress:.0%} {update.progress_message}".rstrip()
    return line


def _error(exc: BaseException) -> None:
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)


async def run(args: argparse.Namespace) -> int:
    """Submit the task and follow it to its end; return the exit code described in --help."""
    params = _params(args.params)
    capability: str = args.capability
    options: dict[str, Any] = {
        "timeout_seconds": args.timeout,
        "priority": args.priority,
        "required_tags": args.require_tag,
        "preferred_tags": args.prefer_tag,
        "worker_id": args.worker_id,
        "fairness_key": args.fairness_key,
    }
    try:
        if args.orchestrator:
            async with RemoteOrchestrator(args.orchestrator) as remote:
                return await _follow(await remote.execute_task(capability, params, **options))
        async with AsyncOrchestrator(args.registry) as orchestrator:
            if args.wait > 0:
                # A worker that just started may not be listed yet; if none comes, execute_task below
                # raises NoWorkerError with the full story.
                with contextlib.suppress(NoWorkerError, TimeoutError):
                    await orchestrator.wait_for_workers(capability, timeout_seconds=args.wait)
            return await _follow(await orchestrator.execute_task(capability, params, **options))
    except (
        NoWorkerError,
        TaskRejectedError,
        RegistryUnavailableError,
        InvalidParametersError,
        QueueFullError,
        OrchestratorUnavailableError,
    ) as exc:
        _error(exc)
        return EXIT_NOT_RUN


async def _follow(handle: AsyncTaskHandle) -> int:
    if handle.worker_id:
        print(f"task {handle.task_id} -> worker {handle.worker_id} ({handle.worker_address})", flush=True)
    else:
        print(f"task {handle.task_id} queued: every capable worker is busy", flush=True)
    try:
        async for update in handle:
            print(_describe(update), flush=True)
        output = await handle.result()
    except TaskRejectedError as exc:  # the worker refused it: it never ran
        _error(exc)
        return EXIT_NOT_RUN
    except (WorkerAbstractionError, TimeoutError) as exc:
        _error(exc)
        return EXIT_FAILED
    print(json.dumps(output, indent=2, ensure_ascii=False), flush=True)
    return EXIT_COMPLETED
