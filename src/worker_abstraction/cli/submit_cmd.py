"""Run one task on a worker that offers CAPABILITY, print its status transitions and its output.

With an orchestrator daemon configured (--orchestrator, WA_ORCHESTRATOR or `orchestrator` in the config
file) the task goes into the daemon's shared queue, and the daemon keeps it whatever happens to this
command. Without one, an orchestrator runs in this process (one line on stderr says so), and the task
lives as long as the command does.

Each --param is KEY=VALUE; VALUE is parsed as JSON (`n=3` is a number, `flags=[1,2]` a list,
`opts={"a":1}` an object, `s='"3"'` the string "3"), and when it is not valid JSON it is taken as a plain
string (`text=hello world`). KEY=@PATH reads VALUE from a file, KEY=@- from stdin (at most one), the same
way: JSON, or else the text as it is. The first line names the task and the worker running it, then one
line per status update (PENDING, RUNNING, COMPLETED, ...), then the output as JSON; errors go to stderr.
When stderr is a terminal, a task that reports progress also gets a progress bar there, cleared at its end
(stdout is the same with or without it; no bar with --json, --stream or --detach).

With --json, stdout has one JSON object per line: {"event": "submitted", "task_id", "worker_id",
"worker_address", "orchestrator"}, then one {"event": "update", "task_id", "status", "sequence",
"attempt", "worker_id", "progress", "progress_message", "error_message", "timestamp"} per update (with
"failure": {"type", "message", "retryable", "origin"} when the update has one), then {"event": "result",
"task_id", "status", "output"}, or "error": {"type", "message"} instead of "output" when the task did not
complete (task_id and status are null when it was never submitted).

With --stream, the output the handler streams as it works (`ctx.emit`) is printed as it comes, between the
status lines: text chunks as they are (no newline added; a status line after them starts a line of its
own), JSON chunks one per line; with --json, one {"event": "chunk", "task_id", "index", "text" or "data",
"last"} per chunk. Without --stream, updates that only carry a chunk print no status line (with --json they
are still one "update" object each). A task that asks for input shows INPUT_REQUIRED with its question;
answer it with `wa respond TASK_ID --value JSON` from another shell.

With --detach (a daemon only), the task id alone is printed (with --json, the "submitted" object) and the
command exits 0 at once; `wa task watch ID` follows the task later.

On Ctrl-C (SIGINT) or SIGTERM: through a daemon the task keeps running there, and stderr says how to
follow it (`wa task watch ID`) or cancel it (`wa cancel ID`); in-process the task is canceled on its
worker first (waiting at most 5 seconds for it to confirm). Either way the exit code is 130 (143 on
SIGTERM). A second Ctrl-C does not wait.

exit codes: 0 completed; 1 failed, canceled or timed out; 2 not run (no live worker offers the capability,
the registry or the daemon is unreachable, the parameters or options are invalid, the queue is full, the
worker rejected the task, or a usage error); 130 interrupted; 141 stdout's reader left (e.g. `| head`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from worker_abstraction.cli import UsageError, add_registry_argument, non_negative_int, times
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.params import decode
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import InvalidTaskOptionsError
from worker_abstraction.options import RetryPolicy

NAME = "submit"
SUMMARY = "run one task and stream its status"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa submit dummy_processor --param input=hello
  wa submit word_count --param text="the quick brown fox" --param min_len=4 --timeout 10
  wa submit word_count -p text=@README.md --json | jq -c 'select(.event == "result") | .output'
  cat opts.json | wa submit render -p options=@- --orchestrator 127.0.0.1:50052 --retries 2
  wa submit summarize -p text=@notes.txt --stream --orchestrator 127.0.0.1:50052
  wa submit nightly_report --detach --idempotency-key report-2025-06-01 --orchestrator 127.0.0.1:50052
"""

STDIN = "-"


@dataclass(frozen=True, slots=True)
class FromFile:
    """A parameter value still to be read: from the file at `path`, or from stdin when `path` is "-"."""

    path: str


def parse_param(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` to `(KEY, value)`: VALUE decoded as JSON, or kept as a string; `KEY=@PATH` to a FromFile."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if raw.startswith("@"):
        if raw == "@":
            raise argparse.ArgumentTypeError(f"expected a file (or - for stdin) after @, got {text!r}")
        return key, FromFile(raw[1:])
    return key, decode(raw)


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("capability", metavar="CAPABILITY", help="name of the capability to run")
    parser.add_argument(
        "--param",
        "-p",
        dest="params",
        action="append",
        default=[],
        type=parse_param,
        metavar="KEY=VALUE",
        help="a parameter (repeatable); VALUE is JSON, or a plain string when not valid JSON; "
        "KEY=@FILE reads VALUE from FILE, KEY=@- from stdin",
    )
    add_registry_argument(parser, settings)
    parser.add_argument(
        "--orchestrator",
        metavar="HOST:PORT",
        default=settings.default("orchestrator"),
        help=settings.help(
            "orchestrator",
            "submit through this orchestrator daemon (its shared queue); unset: run an orchestrator in this process",
        ),
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=settings.default("task_timeout"),
        help=settings.help("task_timeout", "seconds the task's handler may run once it starts (0: no limit)"),
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line: each update, the result")
    parser.add_argument(
        "--stream",
        action="store_true",
        help="print the output the task streams (ctx.emit) as it comes: text as it is, JSON one per line",
    )
    parser.add_argument(
        "--detach",
        action="store_true",
        help="print the task id and exit 0 without waiting (needs an orchestrator daemon)",
    )
    parser.add_argument(
        "--idempotency-key",
        metavar="KEY",
        default="",
        help="submitting again with the same KEY gives the first submission's task instead of a new one",
    )
    parser.add_argument(
        "--retries",
        type=non_negative_int,
        metavar="N",
        default=None,
        help="retry a failed attempt up to N times (infrastructure failures; task errors too with "
        "--retry-task-errors); unset: the orchestrator's policy",
    )
    parser.add_argument(
        "--retry-task-errors",
        action="store_true",
        help="also retry when the task itself failed (its handler raised or it timed out); "
        "without --retries, up to 2 retries",
    )
    parser.add_argument(
        "--queue-timeout",
        type=float,
        metavar="SECONDS",
        default=None,
        help="fail the task if no worker takes it within SECONDS; unset: the orchestrator's default",
    )
    parser.add_argument("--priority", type=int, default=0, help="higher runs first when workers are busy")
    parser.add_argument(
        "--delay",
        type=times.duration,
        metavar="DURATION",
        default=None,
        help="a delayed task: stored now, started no sooner than DURATION after the orchestrator accepts it "
        "(90, 30s, 5m, 2h, 1d)",
    )
    parser.add_argument(
        "--at",
        type=times.instant,
        metavar="TIME",
        default=None,
        help="a delayed task: started no sooner than TIME (ISO 8601, e.g. 2026-12-08T09:00:00+01:00; "
        "without an offset: this machine's local time)",
    )
    parser.add_argument(
        "--require-approval",
        action="store_true",
        help="the task waits (APPROVAL_REQUIRED) until an operator runs `wa approve` (or `wa deny`: it ends "
        "CANCELED); needs an orchestrator daemon",
    )
    parser.add_argument(
        "--require-tag", action="append", default=[], metavar="TAG", help="run only on workers with this tag"
    )
    parser.add_argument("--prefer-tag", action="append", default=[], metavar="TAG", help="prefer workers with this tag")
    parser.add_argument("--worker-id", metavar="ID", default=None, help="run only on this worker")
    parser.add_argument(
        "--fairness-key", metavar="KEY", default="", help="e.g. a tenant: keys of equal priority take turns"
    )
    parser.add_argument(
        "--session-key",
        metavar="KEY",
        default="",
        help="the tasks of one key go to one worker while it lives (the handler sees ctx.session_key)",
    )
    parser.add_argument(
        "--session-hard",
        metavar="SECONDS",
        type=float,
        default=None,
        help="with --session-key: wait up to SECONDS for the key's worker (busy, or gone and coming back) "
        "rather than run elsewhere (hard affinity; 0: the daemon's default, 30 s)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        default=settings.default("wait"),
        help=settings.help("wait", "seconds to wait for a worker offering CAPABILITY to appear (in-process)"),
    )


def read_params(pairs: list[tuple[str, Any]], stdin: TextIO) -> dict[str, Any]:
    """The parameters, with `@FILE` and `@-` values read and decoded.

    Raises:
        UsageError: a key given twice, a file that cannot be read (named), or more than one `@-`.
    """
    from_stdin = [key for key, value in pairs if isinstance(value, FromFile) and value.path == STDIN]
    if len(from_stdin) > 1:
        raise UsageError(
            f"only one parameter can be read from stdin (@-), got {len(from_stdin)}: {', '.join(from_stdin)}"
        )
    params: dict[str, Any] = {}
    for key, value in pairs:
        if key in params:
            raise UsageError(f"parameter {key!r} given more than once")
        params[key] = _read(key, value, stdin) if isinstance(value, FromFile) else value
    return params


def _read(key: str, source: FromFile, stdin: TextIO) -> Any:
    if source.path == STDIN:
        return decode(stdin.read())
    try:
        return decode(Path(source.path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"parameter {key!r}: no such file {source.path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"parameter {key!r}: cannot read {source.path}: {reason}") from None


def task_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `TaskOptions` fields the flags set.

    Raises:
        InvalidTaskOptionsError: --retries past the most attempts a task may have.
    """
    options: dict[str, Any] = {
        "timeout_seconds": args.timeout,
        "priority": args.priority,
        "required_tags": args.require_tag,
        "preferred_tags": args.prefer_tag,
        "worker_id": args.worker_id,
        "fairness_key": args.fairness_key,
        "idempotency_key": args.idempotency_key,
    }
    if args.retries is not None or args.retry_task_errors:
        policy: dict[str, Any] = {"retry_task_errors": args.retry_task_errors}
        if args.retries is not None:
            policy["max_attempts"] = args.retries + 1
        options["retry_policy"] = RetryPolicy(**policy)
    if args.queue_timeout is not None:
        options["queue_timeout_seconds"] = args.queue_timeout
    if args.delay is not None:
        options["delay_seconds"] = args.delay
    if args.at is not None:
        options["not_before"] = args.at
    return options


async def run(args: argparse.Namespace) -> int:
    """Submit the task and follow it to its end (or not, with --detach); the exit code described in --help.

    Raises:
        UsageError: --detach or --require-approval without a daemon, --detach with --stream, or a parameter
            that cannot be read.
    """
    from worker_abstraction.cli.submission import Submission

    address: str | None = args.orchestrator or None
    if args.detach and address is None:
        raise UsageError(
            "--detach needs an orchestrator daemon (--orchestrator, WA_ORCHESTRATOR or the config file): "
            "a task of an orchestrator in this process would end with it"
        )
    if args.require_approval and address is None:
        raise UsageError(
            "--require-approval needs an orchestrator daemon (--orchestrator, WA_ORCHESTRATOR or the config file): "
            "`wa approve` reaches a daemon's tasks, not those of an orchestrator in this process"
        )
    if args.detach and args.stream:
        raise UsageError("--stream prints the task's output as it comes, --detach does not wait for it: give one")
    submission = Submission(
        args.capability,
        registry=args.registry,
        orchestrator=address,
        json_output=args.json,
        tls=tls_of(args),
        stream=args.stream,
    )
    params = read_params(args.params, sys.stdin)
    try:
        options = task_options(args)
        if args.require_approval:  # (not in task_options: `wa schedule` shares those, and has no such flag)
            options["require_approval"] = True
        if args.session_key:
            options["session_key"] = args.session_key
        if args.session_hard is not None:
            if not args.session_key:
                raise UsageError("--session-hard waits for the worker of a session key: give --session-key too")
            options["session_hard"] = True
            options["session_wait_seconds"] = args.session_hard
    except InvalidTaskOptionsError as exc:
        return submission.not_run(exc)
    return await submission.run(params, options, detach=args.detach, wait_seconds=args.wait)
