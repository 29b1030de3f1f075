"""See and change an orchestrator daemon's rate and concurrency limits (operators only, when it checks
credentials). A limit set here holds until the daemon restarts: `wa orchestrator --rate-limit ...
--concurrency-limit ...` makes it last.

  wa limits list [--json]                 the limits, one a line
  wa limits set [--rate CAPABILITY=RATE[,burst=N][,key=KEY] ...] [--concurrency CAPABILITY=N[,key=KEY][,strategy=S] ...]
                                          each replaces its capability's limit of its kind
  wa limits remove CAPABILITY             drops a capability's limits (its tasks held back may start)

KEY is fairness or param:NAME (a task argument, e.g. param:user_id); RATE is 20/s, 1000/h, 100/10s; S is
queue, cancel_newest or cancel_in_progress. A limit naming a capability no live worker offers, or a
parameter it does not declare, is refused, naming it. `wa queue` shows the tasks a limit holds back.

exit codes: 0 done; 1 the daemon cannot be reached or refused the call; 2 a limit that cannot work or a usage
error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from worker_abstraction.cli import actions_of, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.errors import InvalidParametersError, OrchestratorUnavailableError, WorkerAbstractionError

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.gates import LimitSet

NAME = "limits"
SUMMARY = "see and change a daemon's rate and concurrency limits"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa limits set --rate send_email=20/s,burst=5,key=param:user_id --concurrency render=2,key=fairness
  wa limits list
  wa limits remove send_email
"""
EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    action = actions_of(parser, settings)
    listing = action("list", "the daemon's limits", "List the daemon's rate and concurrency limits.")
    listing.add_argument("--json", action="store_true", help="print {rate_limits: [...], concurrency_limits: [...]}")
    setting = action("set", "set limits", "Set limits: each replaces its capability's limit of its kind.")
    setting.add_argument("--rate", action="append", default=[], metavar="CAPABILITY=RATE[,burst=N][,key=KEY]")
    setting.add_argument("--concurrency", action="append", default=[], metavar="CAPABILITY=N[,key=KEY][,strategy=S]")
    removing = action("remove", "drop a capability's limits", "Drop a capability's rate and concurrency limits.")
    removing.add_argument("capability", metavar="CAPABILITY")


async def run(args: argparse.Namespace) -> int:
    from worker_abstraction.cli.tls import tls_of
    from worker_abstraction.orchestrator.core.gates import ConcurrencyLimit, RateLimit
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    try:
        wanted: list[RateLimit | ConcurrencyLimit] = [
            *(RateLimit.from_text(text) for text in getattr(args, "rate", [])),
            *(ConcurrencyLimit.from_text(text) for text in getattr(args, "concurrency", [])),
        ]
    except InvalidParametersError as error:
        print(f"not set: {'; '.join(error.problems)}", file=sys.stderr)
        return EXIT_INVALID
    if args.action == "set" and not wanted:
        print("not set: give at least one --rate or --concurrency", file=sys.stderr)
        return EXIT_INVALID
    try:
        async with RemoteOrchestrator(args.orchestrator, tls=tls_of(args)) as remote:
            if args.action == "set":
                limits = await remote.set_limits(*wanted)
            elif args.action == "remove":
                limits = await remote.remove_limits(args.capability)
            else:
                limits = await remote.limits()
    except OrchestratorUnavailableError as error:
        print(unreachable(error, args.orchestrator), file=sys.stderr)
        return EXIT_FAILED
    except InvalidParametersError as error:
        print(f"not set: {'; '.join(error.problems)}", file=sys.stderr)
        return EXIT_INVALID
    except WorkerAbstractionError as error:
        print(f"refused: {error}", file=sys.stderr)
        return EXIT_FAILED
    _print(limits, as_json=getattr(args, "json", False))
    return EXIT_OK


def _print(limits: LimitSet, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({
            "rate_limits": [
                {"capability": r.capability, "count": r.count, "window_seconds": r.window_seconds, "key": r.key,
                 "burst": r.burst} for r in limits.rate_limits
            ],
            "concurrency_limits": [
                {"capability": c.capability, "max_in_flight": c.max_in_flight, "key": c.key, "strategy": c.strategy}
                for c in limits.concurrency_limits
            ],
        }, indent=2))  # fmt: skip
        return
    if not limits.rate_limits and not limits.concurrency_limits:
        print("no limits")
    for rate in limits.rate_limits:
        print(f"{rate.capability}: at most {rate.describe()} starts")
    for each in limits.concurrency_limits:
        per = f" per {each.key}" if each.key else ""
        print(f"{each.capability}: at most {each.max_in_flight} in flight{per} ({each.strategy})")
