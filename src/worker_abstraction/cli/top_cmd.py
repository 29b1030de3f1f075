"""Watch an orchestrator daemon live: its workers, its queue and its latest tasks, redrawn every --interval.

  WORKERS  id, name, state (with the reason a worker is SUSPECT), circuit breaker, this daemon's tasks in
           flight on it out of its slots (∞: no limit), capabilities
  QUEUE    tasks waiting for a worker, per capability and priority
  TASKS    the latest --tasks tasks, newest first: id, capability, status, worker, age

Ctrl-C ends the view (exit 0). With --once, one snapshot is printed and the command exits. When stdout is
no terminal, each snapshot is printed as plain text (no colours, no redrawing), one after the other.
A daemon that stops answering while the view runs is named above the last snapshot until it answers again.

exit codes: 0 shown (or stopped with Ctrl-C); 1 the daemon cannot be reached at the start; 2 a usage error.
"""

from __future__ import annotations

import argparse

from worker_abstraction.cli import add_orchestrator_argument, non_negative_int
from worker_abstraction.cli.config import Settings

NAME = "top"
SUMMARY = "a live view of an orchestrator daemon: workers, queue depth, latest tasks"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa top --orchestrator 127.0.0.1:50052
  wa top --interval 5 --tasks 20
  wa top --once > snapshot.txt
"""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    add_orchestrator_argument(parser, settings)
    parser.add_argument(
        "--interval", type=_positive_float, default=1.0, metavar="SECONDS", help="seconds between two snapshots"
    )
    parser.add_argument("--tasks", type=non_negative_int, default=10, metavar="N", help="show the latest N tasks")
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument(
        "--timeout", type=_positive_float, default=5.0, metavar="SECONDS", help="seconds to wait for each answer"
    )


async def run(args: argparse.Namespace) -> int:
    """Show the daemon once or until Ctrl-C; 1 when it cannot be reached at the start."""
    from worker_abstraction.cli import top_view

    return await top_view.show(args)
