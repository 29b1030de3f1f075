"""Deny a task that waits for an operator's approval (APPROVAL_REQUIRED): it never runs, and ends CANCELED
with the reason given, which its record keeps with who decided (`wa task get`). `wa approve` lets it run.

exit codes: 0 denied; 1 the task waits for no approval (it needed none, was decided on already, or
finished); 2 the task is unknown, the daemon cannot be reached, or a usage error (credentials without the
operator role too).
"""

from __future__ import annotations

import argparse

from worker_abstraction.cli import add_orchestrator_argument
from worker_abstraction.cli.approve_cmd import decide
from worker_abstraction.cli.config import Settings

NAME = "deny"
SUMMARY = "refuse a task that waits for approval: it ends CANCELED"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
example:
  wa deny 5919c1f0d4e44c5f9d0f3a8be0c1d2e3 --reason "not during the freeze" --orchestrator 127.0.0.1:50052
"""


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("task_id", metavar="TASK_ID", help="the id `wa submit` printed")
    parser.add_argument("--reason", required=True, help="why: the task's cancel reason, kept with the decision")
    add_orchestrator_argument(parser, settings)


async def run(args: argparse.Namespace) -> int:
    return await decide(args, approved=False)
