"""Show the tasks waiting in an orchestrator daemon's queue, per capability and priority.

exit codes: 0 shown; 1 the daemon cannot be reached; 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys

from worker_abstraction.cli import add_orchestrator_argument, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import OrchestratorUnavailableError

NAME = "queue"
SUMMARY = "show an orchestrator's queue depth per capability and priority"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
example:
  wa queue --orchestrator 127.0.0.1:50052
"""


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    add_orchestrator_argument(parser, settings)
    parser.add_argument("--json", action="store_true", help="print a JSON object {capability: {priority: waiting}}")


async def run(args: argparse.Namespace) -> int:
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    try:
        async with RemoteOrchestrator(args.orchestrator, tls=tls_of(args)) as orchestrator:
            depths = await orchestrator.queue_depths()
            limited = await orchestrator.limited_queues()
    except OrchestratorUnavailableError as exc:
        print(unreachable(exc, args.orchestrator), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({c: {str(p): n for p, n in d.items()} for c, d in depths.items()}, indent=2))
        return 0
    rows = [(capability, priority, waiting) for capability, d in depths.items() for priority, waiting in d.items()]
    width = max([len("CAPABILITY"), *(len(r[0]) for r in rows)])
    print(f"{'CAPABILITY':<{width}}  PRIORITY  WAITING")
    for capability, priority, waiting in rows:
        print(f"{capability:<{width}}  {priority:>8}  {waiting:>7}")
    print(f"{'total':<{width}}  {'':>8}  {sum(r[2] for r in rows):>7}")
    for held in limited:
        when = "when one in flight ends" if held.starts_in_seconds is None else f"in {held.starts_in_seconds:.2f}s"
        print(f"{held.capability}: {held.waiting} rate-limited ({held.limit}); the first may start {when}")
    return 0
