"""Cancel a task held by an orchestrator daemon.

A waiting task never runs; a running one is asked to stop (its handler sees it through its context) and
is stopped after the worker's grace period. Either way it ends CANCELED.

exit codes: 0 cancel requested; 1 the task had already finished; 2 unknown task or daemon unreachable.
"""

from __future__ import annotations

import argparse
import sys

from worker_abstraction.cli import add_orchestrator_argument, unknown_task, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import OrchestratorUnavailableError, TaskNotFoundError
from worker_abstraction.types import TaskStatus

NAME = "cancel"
SUMMARY = "cancel a task held by an orchestrator daemon"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
example:
  wa cancel 5919c1f0d4e44c5f9d0f3a8be0c1d2e3 --orchestrator 127.0.0.1:50052 --reason "no longer needed"
"""


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("task_id", metavar="TASK_ID", help="the id `wa submit` printed")
    add_orchestrator_argument(parser, settings)
    parser.add_argument("--reason", default="canceled from the command line", help="recorded on the task")


async def run(args: argparse.Namespace) -> int:
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    try:
        async with RemoteOrchestrator(args.orchestrator, tls=tls_of(args)) as orchestrator:
            canceled = await orchestrator.cancel(args.task_id, args.reason)
            record = await orchestrator.task(args.task_id)
    except TaskNotFoundError:
        print(unknown_task(args.task_id, args.orchestrator), file=sys.stderr)
        return 2
    except OrchestratorUnavailableError as exc:
        print(unreachable(exc, args.orchestrator), file=sys.stderr)
        return 2
    if not canceled:
        print(f"task {args.task_id}: already finished ({record.status.name})")
        return 1
    if record.status is TaskStatus.CANCELED:  # ended at once (it waited, or its worker cannot cancel)
        print(f"task {args.task_id}: canceled: {record.error_message}")
    else:
        print(f"task {args.task_id}: cancel requested; its worker was asked to stop it")
    return 0
