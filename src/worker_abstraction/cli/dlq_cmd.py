"""Inspect and act on an orchestrator daemon's dead-letter queue.

Dead letters are tasks that failed for good after retryable failures; each keeps every attempt
(worker, start, end, error).

  wa dlq list [--json]         one line per dead letter (or the whole history as JSON)
  wa dlq requeue TASK_ID       submit it again (a new task id, printed)
  wa dlq purge [TASK_ID ...]   drop those named, or all of them when none is named
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from worker_abstraction.cli import add_orchestrator_argument
from worker_abstraction.cli.config import Settings
from worker_abstraction.errors import WorkerAbstractionError
from worker_abstraction.orchestrator.remote import RemoteOrchestrator
from worker_abstraction.types import DeadLetter

NAME = "dlq"
SUMMARY = "list, requeue or purge an orchestrator's dead letters"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa dlq list --orchestrator 127.0.0.1:50052
  wa dlq requeue 5919c1f0d4e44c5f9d0f3a8be0c1d2e3
  wa dlq purge
"""


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("action", choices=["list", "requeue", "purge"], help="what to do")
    parser.add_argument("task_ids", nargs="*", metavar="TASK_ID", help="for requeue (one) and purge (any)")
    add_orchestrator_argument(parser, settings)
    parser.add_argument("--json", action="store_true", help="list: print every dead letter with its attempts")


async def run(args: argparse.Namespace) -> int:
    try:
        async with RemoteOrchestrator(args.orchestrator) as orchestrator:
            if args.action == "list":
                letters = await orchestrator.dead_letters()
                if args.json:
                    print(json.dumps([_as_json(letter) for letter in letters], indent=2, default=str))
                for letter in [] if args.json else letters:
                    print(f"{letter.task_id}  {letter.capability}  {len(letter.attempts)} attempt(s)  "
                          f"{letter.error_message}")  # fmt: skip
            elif args.action == "requeue":
                if len(args.task_ids) != 1:
                    print("wa dlq requeue: give exactly one TASK_ID", file=sys.stderr)
                    return 2
                handle = await orchestrator.requeue_dead_letter(args.task_ids[0])
                print(f"requeued as task {handle.task_id}")
            else:
                print(f"purged {await orchestrator.purge_dead_letters(args.task_ids or None)}")
    except WorkerAbstractionError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


def _as_json(letter: DeadLetter) -> dict[str, object]:
    data = asdict(letter)
    data.pop("options", None)  # how to resubmit it: internal
    return data
