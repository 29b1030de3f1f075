"""Approve a task that waits for an operator's approval (APPROVAL_REQUIRED) before it goes to a worker.

A task waits for approval when it was submitted with `wa submit --require-approval` (`TaskOptions.
require_approval`), or its capability is one the daemon was started with `--require-approval CAPABILITY`
for. Approved, it goes on to the queue and runs; `wa deny TASK_ID --reason R` ends it CANCELED instead.
The decision, who made it (the caller's principal when the daemon checks credentials: operators only) and
its reason are kept in the task's record (`wa task get`). List the tasks that wait with
`wa task list --status approval_required`.

exit codes: 0 approved; 1 the task waits for no approval (it needed none, was decided on already, or
finished); 2 the task is unknown, the daemon cannot be reached, or a usage error (credentials without the
operator role too).
"""

from __future__ import annotations

import argparse
import sys

from worker_abstraction.cli import add_orchestrator_argument, unknown_task, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import OrchestratorUnavailableError, TaskNotFoundError, TaskNotWaitingError

NAME = "approve"
SUMMARY = "let a task that waits for approval (APPROVAL_REQUIRED) run"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa task list --status approval_required
  wa approve 5919c1f0d4e44c5f9d0f3a8be0c1d2e3 --reason "change ticket 4711" --orchestrator 127.0.0.1:50052
"""

EXIT_OK, EXIT_NOT_WAITING, EXIT_UNKNOWN = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("task_id", metavar="TASK_ID", help="the id `wa submit` printed")
    parser.add_argument("--reason", default="", help="why, kept with the decision in the task's record")
    add_orchestrator_argument(parser, settings)


async def run(args: argparse.Namespace) -> int:
    return await decide(args, approved=True)


async def decide(args: argparse.Namespace, *, approved: bool) -> int:
    """Approve or deny (`wa deny` shares it): say what the task does now; the exit code of --help."""
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    command = "approve" if approved else "deny"
    address: str = args.orchestrator
    try:
        async with RemoteOrchestrator(address, tls=tls_of(args)) as remote:
            if approved:
                status = await remote.approve(args.task_id, args.reason)
            else:
                status = await remote.deny(args.task_id, args.reason)
    except TaskNotFoundError:
        print(unknown_task(args.task_id, address), file=sys.stderr)
        return EXIT_UNKNOWN
    except OrchestratorUnavailableError as exc:
        print(unreachable(exc, address), file=sys.stderr)
        return EXIT_UNKNOWN
    except TaskNotWaitingError as exc:
        print(f"wa {command}: {exc}", file=sys.stderr)
        return EXIT_NOT_WAITING
    verdict = "approved" if approved else "denied"
    why = f" ({args.reason})" if args.reason else ""
    print(f"task {args.task_id}: {verdict}{why}; now {status.name}")
    return EXIT_OK
