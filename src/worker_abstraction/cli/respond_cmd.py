"""Answer the question a task waits on, or show it.

A handler that calls `ctx.request_input(prompt, schema=...)` waits, and its task shows INPUT_REQUIRED
(`wa task list --status input_required`), until someone answers. The daemon checks the answer against the
question's JSON Schema: a refused answer is listed problem by problem and the task keeps waiting for a
right one. Who answered (the caller's principal, when the daemon checks credentials) is kept in the task's
record (`wa task get`).

  wa respond TASK_ID                  the question the task waits on: its id, prompt, schema and deadline
  wa respond TASK_ID --value JSON     answer with a JSON value: --value @FILE reads it from FILE, @- from stdin
  wa respond TASK_ID --text TEXT      answer with TEXT as a JSON string (no quoting needed)

--request-id ID answers only if the task still waits on question ID (`wa respond TASK_ID` shows it): a
handler that asks several questions in turn cannot take an answer meant for an earlier one.

exit codes: 0 answered (without a value: the question is shown); 1 the task waits for no input (it
finished, runs, or waits on another question than --request-id); 2 not answered: the answer breaks the
question's schema (every problem listed), --value is not JSON or its file cannot be read, the task is
unknown, or the daemon cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from worker_abstraction.cli import UsageError, add_orchestrator_argument, unknown_task, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.exchanges_view import compact, question_lines
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import (
    InvalidParametersError,
    OrchestratorUnavailableError,
    TaskNotFoundError,
    TaskNotWaitingError,
)

NAME = "respond"
SUMMARY = "answer the question a task waits on (INPUT_REQUIRED), or show it"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa respond 5919c1f0d4e44c5f9d0f3a8be0c1d2e3
  wa respond 5919c1f0d4e44c5f9d0f3a8be0c1d2e3 --value '{"approved": true, "note": "ship it"}'
  wa respond 5919c1f0d4e44c5f9d0f3a8be0c1d2e3 --text "looks good" --request-id input-1
  wa respond 5919c1f0d4e44c5f9d0f3a8be0c1d2e3 --value @answer.json --orchestrator 127.0.0.1:50052
"""

EXIT_OK, EXIT_NOT_WAITING, EXIT_NOT_ANSWERED = 0, 1, 2
STDIN = "-"


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("task_id", metavar="TASK_ID", help="the id `wa submit` printed")
    value = parser.add_mutually_exclusive_group()
    value.add_argument(
        "--value",
        metavar="JSON",
        help="the answer, a JSON value; @FILE reads it from FILE, @- from stdin",
    )
    value.add_argument("--text", metavar="TEXT", help="the answer, TEXT as a JSON string")
    parser.add_argument(
        "--request-id",
        metavar="ID",
        default="",
        help="answer only if the task waits on this question; unset: the one it waits on now",
    )
    add_orchestrator_argument(parser, settings)


def answer_of(args: argparse.Namespace, stdin: TextIO) -> tuple[bool, Any]:
    """Whether an answer was given, and its value: --text as it is, --value decoded from JSON.

    Raises:
        UsageError: --value (or the file it names) is not JSON, or the file cannot be read.
    """
    if args.text is not None:
        return True, args.text
    if args.value is None:
        return False, None
    raw: str = args.value
    where = "--value"
    if raw.startswith("@"):
        source = raw[1:]
        if not source:
            raise UsageError("expected a file (or - for stdin) after --value @")
        where = "stdin" if source == STDIN else source
        raw = stdin.read() if source == STDIN else _read(source)
    try:
        return True, json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{where} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "a plain text answer goes with --text TEXT"
        ) from None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--value: no such file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"--value: cannot read {path}: {reason}") from None


async def run(args: argparse.Namespace) -> int:
    """Answer (or show) the question; the exit code described in --help.

    Raises:
        UsageError: the answer given is not JSON, or its file cannot be read.
    """
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    given, value = answer_of(args, sys.stdin)
    address: str = args.orchestrator
    try:
        async with RemoteOrchestrator(address, tls=tls_of(args)) as remote:
            if not given:
                record = await remote.task(args.task_id)
                request = record.input_request
                if request is None:
                    print(f"task {args.task_id} waits for no input ({record.status.name})")
                    return EXIT_NOT_WAITING
                print(f"task {args.task_id} waits for an answer:")
                print("\n".join("  " + line for line in question_lines(request, datetime.now(UTC))))
                print(f"answer it: wa respond {args.task_id} --value JSON --request-id {request.request_id}")
                return EXIT_OK
            answer = await remote.provide_input(args.task_id, value, request_id=args.request_id)
    except TaskNotFoundError:
        print(unknown_task(args.task_id, address), file=sys.stderr)
        return EXIT_NOT_ANSWERED
    except OrchestratorUnavailableError as exc:
        print(unreachable(exc, address), file=sys.stderr)
        return EXIT_NOT_ANSWERED
    except InvalidParametersError as exc:  # InvalidAnswerError: the schema's; or the daemon's bounds
        count = len(exc.problems)
        print(f"wa respond: the answer was refused ({count} problem{'s' if count != 1 else ''}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        print(f"task {args.task_id} still waits: `wa respond {args.task_id}` shows the question", file=sys.stderr)
        return EXIT_NOT_ANSWERED
    except TaskNotWaitingError as exc:
        print(f"wa respond: {exc}", file=sys.stderr)
        return EXIT_NOT_WAITING
    print(f"task {args.task_id}: answered {answer.request_id} with {compact(value)}")
    return EXIT_OK
