"""A human worker's inbox: tasks that wait for a person's answer, and the worker that serves them.

  wa inbox serve CAPABILITY [CAPABILITY...] [--schema JSON] [worker flags]
                                        serve capabilities answered by people (a worker: slots, retries,
                                        timeouts and cancel as for any); each task asks its `prompt`
  wa inbox list [--capability C] [--json]
                                        the tasks waiting for input (any capability), oldest question first
  wa inbox claim TASK_ID [--as NAME]    take a task, so nobody else answers it meanwhile
  wa inbox release TASK_ID [--as NAME]  give it back (an operator may release anyone's)
  wa inbox answer TASK_ID --value JSON [--as NAME]
                                        answer it (--text TEXT: a JSON string); checked against its schema

--as names the person when the daemon checks no credentials; with tokens on, the caller's principal is who
claims and answers, and the task's record keeps both (`wa task get`).

exit codes: 0 done; 1 the task waits for no input, or someone else holds it; 2 refused (an answer that
breaks the schema: every problem listed), the task is unknown, or the daemon cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from worker_abstraction.cli import UsageError, actions_of, unknown_task, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import (
    InvalidParametersError,
    OrchestratorUnavailableError,
    TaskNotFoundError,
    TaskNotWaitingError,
)

NAME = "inbox"
SUMMARY = "a human worker's inbox: list, claim and answer the tasks people serve"
DEFAULT_LOG_LEVEL = "INFO"
EPILOG = """\
example:
  wa inbox serve review --registry 127.0.0.1:50051 --max-concurrent 10
  wa submit review --param prompt="Refund order 1234?" --param details='{"amount": 120}'
  wa inbox list
  wa inbox claim TASK_ID --as alice
  wa inbox answer TASK_ID --value '{"refund": true}' --as alice
"""
EXIT_OK, EXIT_NOT_WAITING, EXIT_REFUSED = 0, 1, 2
_PAGE = 1000


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    from worker_abstraction.cli.worker_cmd import add_worker_options

    action = actions_of(parser, settings)
    serving = action("serve", "serve capabilities answered by people", "Run a human worker.")
    serving.add_argument("capabilities", nargs="+", metavar="CAPABILITY")
    serving.add_argument("--schema", metavar="JSON", default="", help="the JSON Schema answers must satisfy")
    add_worker_options(serving, settings)
    listing = action("list", "tasks waiting for an answer", "List the tasks waiting for input.")
    listing.add_argument("--capability", default="", metavar="C", help="only this capability's")
    listing.add_argument("--json", action="store_true", help="one JSON object per task")
    for name, summary in (("claim", "take a task"), ("release", "give a task back")):
        made = action(name, summary, summary.capitalize() + ".")
        made.add_argument("task_id", metavar="TASK_ID")
        made.add_argument("--as", dest="person", default="", metavar="NAME", help="who (credentials off)")
    answering = action("answer", "answer a task", "Answer a task's question.")
    answering.add_argument("task_id", metavar="TASK_ID")
    value = answering.add_mutually_exclusive_group(required=True)
    value.add_argument("--value", metavar="JSON", help="the answer, a JSON value")
    value.add_argument("--text", metavar="TEXT", help="the answer, TEXT as a JSON string")
    answering.add_argument("--as", dest="person", default="", metavar="NAME", help="who answers (credentials off)")


async def run(args: argparse.Namespace) -> int:
    if args.action == "serve":
        return await _serve(args)
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    address: str = args.orchestrator
    try:
        async with RemoteOrchestrator(address, tls=tls_of(args)) as remote:
            if args.action == "list":
                return await _list(remote, args)
            if args.action == "answer":
                answer = await remote.provide_input(args.task_id, _value(args), answered_by=args.person)
                print(f"task {args.task_id}: answered {answer.request_id}")
                return EXIT_OK
            record = await remote.claim(args.task_id, args.person, release=args.action == "release")
    except TaskNotFoundError:
        print(unknown_task(args.task_id, address), file=sys.stderr)
        return EXIT_REFUSED
    except OrchestratorUnavailableError as exc:
        print(unreachable(exc, address), file=sys.stderr)
        return EXIT_REFUSED
    except InvalidParametersError as exc:
        print(f"wa inbox: refused ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_REFUSED
    except TaskNotWaitingError as exc:
        print(f"wa inbox: {exc}", file=sys.stderr)
        return EXIT_NOT_WAITING
    held = f"held by {record.claimed_by}" if record.claimed_by else "free: anyone may claim it"
    print(f"task {record.task_id}: {held}")
    return EXIT_OK


def _value(args: argparse.Namespace) -> Any:
    if args.text is not None:
        return args.text
    try:
        return json.loads(args.value)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--value is not JSON ({exc.msg}); a plain text answer goes with --text TEXT") from None


async def _list(remote: Any, args: argparse.Namespace) -> int:
    from worker_abstraction.types import TaskStatus

    records = await remote.tasks(status=TaskStatus.INPUT_REQUIRED, capability=args.capability or None, limit=_PAGE)
    waiting = [r for r in records if r.input_request is not None]
    waiting.sort(key=lambda r: r.inputs[-1].asked_at_ns if r.inputs else 0)
    now = datetime.now(UTC)
    for record in waiting:
        request = record.input_request
        assert request is not None
        if args.json:
            print(json.dumps({
                "task_id": record.task_id, "capability": record.capability, "request_id": request.request_id,
                "prompt": request.prompt, "schema": request.schema, "claimed_by": record.claimed_by,
                "deadline": request.deadline.isoformat() if request.deadline else None,
            }))  # fmt: skip
            continue
        asked = record.inputs[-1].asked_at if record.inputs else None
        age = f"{(now - asked).total_seconds():.0f}s ago" if asked else ""
        held = f"held by {record.claimed_by}" if record.claimed_by else "free"
        first_line = request.prompt.splitlines()[0] if request.prompt else ""
        print(f"{record.task_id}  {record.capability}  {held}  asked {age}  {first_line[:80]}")
    if not waiting and not args.json:
        print("nothing waits for an answer")
    return EXIT_OK


async def _serve(args: argparse.Namespace) -> int:
    from worker_abstraction.cli.worker_cmd import run_worker
    from worker_abstraction.worker.human import human_worker

    schema = None
    if args.schema:
        try:
            schema = json.loads(args.schema)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--schema is not JSON ({exc.msg})") from None
    try:
        worker_class = human_worker(args.capabilities, answer_schema=schema)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return await run_worker(worker_class, args)
