"""Inspect and act on an orchestrator daemon's dead-letter queue.

Dead letters are tasks that failed for good after retryable failures; each keeps every attempt
(worker, start, end, error).

  wa dlq list [--json]         one line per dead letter; with --json a list of task records in the form
                               of `wa task get --json` (status names, ISO 8601 times, every attempt)
  wa dlq requeue TASK_ID       submit it again (a new task id, printed)
  wa dlq purge [TASK_ID ...]   drop those named, or all of them when none is named

exit codes: 0 done; 1 (purge) a named task is not a dead letter, so it was not purged; 2 (requeue) the
task is not a dead letter, the daemon cannot be reached, or a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from worker_abstraction.cli import add_orchestrator_argument, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.task_cmd import record_to_json
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import OrchestratorUnavailableError, TaskNotFoundError
from worker_abstraction.types import DeadLetter, TaskRecord, TaskStatus, TaskUpdate

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

NAME = "dlq"
SUMMARY = "list, requeue or purge an orchestrator's dead letters"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa dlq list --orchestrator 127.0.0.1:50052
  wa dlq list --json | jq -r '.[].task_id'
  wa dlq requeue 5919c1f0d4e44c5f9d0f3a8be0c1d2e3
  wa dlq purge
"""

EXIT_OK, EXIT_NOT_PURGED, EXIT_ERROR = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("action", choices=["list", "requeue", "purge"], help="what to do")
    parser.add_argument("task_ids", nargs="*", metavar="TASK_ID", help="for requeue (one) and purge (any)")
    add_orchestrator_argument(parser, settings)
    parser.add_argument("--json", action="store_true", help="list: print the dead letters as `wa task get --json`")


async def run(args: argparse.Namespace) -> int:
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    address: str = args.orchestrator
    if args.action == "requeue" and len(args.task_ids) != 1:
        print("wa dlq requeue: give exactly one TASK_ID", file=sys.stderr)
        return EXIT_ERROR
    try:
        async with RemoteOrchestrator(address, tls=tls_of(args)) as orchestrator:
            if args.action == "list":
                return await _list(orchestrator, json_output=args.json)
            if args.action == "requeue":
                handle = await orchestrator.requeue_dead_letter(args.task_ids[0])
                print(f"requeued as task {handle.task_id}")
                return EXIT_OK
            return await _purge(orchestrator, args.task_ids)
    except TaskNotFoundError:
        print(f"no dead letter {args.task_ids[0]!r} on the orchestrator at {address}", file=sys.stderr)
    except OrchestratorUnavailableError as exc:
        print(unreachable(exc, address), file=sys.stderr)
    return EXIT_ERROR


async def _list(orchestrator: RemoteOrchestrator, *, json_output: bool) -> int:
    letters = await orchestrator.dead_letters()
    if not json_output:
        for letter in letters:
            print(f"{letter.task_id}  {letter.capability}  {len(letter.attempts)} attempt(s)  {letter.error_message}")
        return EXIT_OK
    records = [await _record(orchestrator, letter) for letter in letters]
    print(json.dumps([record_to_json(r) for r in records], indent=2, ensure_ascii=False))
    return EXIT_OK


async def _record(orchestrator: RemoteOrchestrator, letter: DeadLetter) -> TaskRecord:
    """The daemon's record of a dead-lettered task, or one made from the letter when the task is forgotten."""
    try:
        return await orchestrator.task(letter.task_id)
    except TaskNotFoundError:  # a daemon without a store keeps only its latest finished tasks
        final = TaskUpdate(letter.task_id, TaskStatus.FAILED, error_message=letter.error_message)
        return TaskRecord(
            letter.task_id,
            letter.capability,
            TaskStatus.FAILED,
            params=letter.params,
            attempts=letter.attempts,
            last_update=final,
            dead_lettered=True,
            idempotency_key=letter.options.idempotency_key,
        )


async def _purge(orchestrator: RemoteOrchestrator, task_ids: list[str]) -> int:
    if not task_ids:
        print(f"purged {await orchestrator.purge_dead_letters(None)}")
        return EXIT_OK
    held = {letter.task_id for letter in await orchestrator.dead_letters()}
    named = list(dict.fromkeys(task_ids))
    known = [task_id for task_id in named if task_id in held]
    for task_id in named:
        if task_id not in held:
            print(f"no dead letter {task_id!r} on the orchestrator at {orchestrator.address}", file=sys.stderr)
    # An empty list would purge them all: ask only for those that are there.
    purged = await orchestrator.purge_dead_letters(known) if known else 0
    print(f"purged {purged}")
    return EXIT_OK if purged == len(named) else EXIT_NOT_PURGED
