"""A schedule from `wa schedule add|update`'s arguments: its flags (a capability and its `-p` parameters, or a
workflow file; the timing, the policies, the task's options), or its JSON form whole (`--from-json`).

Every problem of a definition is gathered (the task options', the workflow file's, the schedule's own), so
the command lists them all at once. The `-p` values are typed as the capability declares them, as `wa
submit` types them, once the daemon's workers are known (`settled`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker_abstraction.cli import UsageError, non_negative_int, times
from worker_abstraction.cli.submit_cmd import parse_param, read_params, task_options
from worker_abstraction.errors import InvalidParametersError, WorkerAbstractionError

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator
    from worker_abstraction.schedules import Schedule

STDIN = "-"
OVERLAP = ("skip", "buffer_one", "allow_all")  # (as `schedules.model`; a test keeps them equal)
MISSED = ("skip", "latest", "all")
DEFAULT_OVERLAP, DEFAULT_MISSED, DEFAULT_GRACE_SECONDS = "skip", "latest", 3600.0
# The flags that define a schedule, besides --from-json (which gives it whole): their values when not given.
_DEFINING: dict[str, Any] = {
    "capability": None, "params": [], "workflow": None, "cron": None, "every": None, "timezone": None,
    "overlap": None, "missed": None, "grace": None, "start_at": None, "paused": False, "description": None,
    "timeout": None, "priority": None, "queue_timeout": None, "retries": None, "retry_task_errors": False,
    "require_tag": [], "prefer_tag": [], "worker_id": None, "fairness_key": None,
}  # fmt: skip


def add_definition_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `add` and `update`: NAME, then CAPABILITY and `-p`, `--workflow` or `--from-json`, and
    the timing, policies and task options (unset ones stay None, so `--from-json` can tell what was given)."""
    parser.add_argument("name", metavar="NAME", nargs="?", help="the schedule's name (letters, digits, . _ -)")
    parser.add_argument("capability", metavar="CAPABILITY", nargs="?", help="the capability each occurrence runs")
    parser.add_argument(
        "--param", "-p", dest="params", action="append", default=[], type=parse_param, metavar="KEY=VALUE",
        help="a parameter of the task (repeatable), as `wa submit` takes it: JSON, else a string; KEY=@FILE",
    )  # fmt: skip
    parser.add_argument("--workflow", metavar="FILE", help="run this workflow file (JSON; - for stdin) instead")
    parser.add_argument(
        "--from-json", metavar="FILE", help="the whole schedule in its JSON form (- for stdin), e.g. `get --json`"
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--cron", metavar="EXPR", help="five fields (minute hour day month weekday) or @hourly, @daily…")
    when.add_argument("--every", type=times.duration, metavar="DURATION", help="a fixed interval (whole seconds)")
    parser.add_argument("--timezone", metavar="TZ", help="the IANA zone --cron is read in, e.g. Europe/Paris (UTC)")
    parser.add_argument(
        "--overlap", choices=OVERLAP, help=f"an occurrence while the previous run goes ({DEFAULT_OVERLAP})"
    )
    parser.add_argument(
        "--missed", choices=MISSED, help=f"occurrences missed while no orchestrator was up ({DEFAULT_MISSED})"
    )
    parser.add_argument(
        "--grace", type=times.duration, metavar="DURATION", help="with --missed all: how far back missed ones run (1h)"
    )
    parser.add_argument("--start-at", type=times.instant, metavar="TIME", help="no occurrence before TIME (ISO 8601)")
    parser.add_argument("--paused", action="store_true", help="make it paused (it fires nothing until resumed)")
    parser.add_argument("--description", metavar="TEXT", help="free text shown with it")
    task = parser.add_argument_group("the task each occurrence runs")
    task.add_argument(
        "--timeout", type=float, metavar="SECONDS",
        help="seconds its handler may run once it starts (0: no limit; default: 1h, a workflow 0)",
    )  # fmt: skip
    task.add_argument("--priority", type=int, metavar="N", help="higher runs first when workers are busy (0)")
    task.add_argument("--queue-timeout", type=float, metavar="SECONDS", help="fail it if no worker takes it in time")
    task.add_argument("--retries", type=non_negative_int, metavar="N", help="retry a failed attempt up to N times")
    task.add_argument("--retry-task-errors", action="store_true", help="also retry when the task itself failed")
    task.add_argument("--require-tag", action="append", default=[], metavar="TAG", help="only workers with this tag")
    task.add_argument("--prefer-tag", action="append", default=[], metavar="TAG", help="prefer workers with this tag")
    task.add_argument("--worker-id", metavar="ID", help="run only on this worker")
    task.add_argument("--fairness-key", metavar="KEY", help="e.g. a tenant: keys of equal priority take turns")


def definition(args: argparse.Namespace) -> tuple[Schedule | None, list[str]]:
    """The schedule the arguments define, and every problem it has (the capability's parameter types are
    settled later, against the daemon's workers).

    Raises:
        UsageError: arguments that do not fit together, or a file that cannot be read.
    """
    from worker_abstraction.cli.schedule_view import definition_of
    from worker_abstraction.schedules import Schedule

    if args.from_json is not None:
        given = [f"--{key.replace('_', '-')}" for key, unset in _DEFINING.items() if getattr(args, key) != unset]
        if given:
            shown = ", ".join("CAPABILITY" if flag == "--capability" else flag for flag in given)
            raise UsageError(f"--from-json gives the whole schedule: drop {shown} (or edit the file)")
        document = definition_of(_json(_read(args.from_json), args.from_json))
        if args.name is not None and isinstance(document, dict):
            document["name"] = args.name
        try:
            return Schedule.from_dict(document), []
        except InvalidParametersError as invalid:
            return None, invalid.problems
    if args.name is None:
        raise UsageError("give the schedule's NAME (or --from-json FILE)")
    if (args.capability is None) == (args.workflow is None):
        raise UsageError("give CAPABILITY or --workflow FILE, one of the two (or --from-json FILE)")
    if args.workflow is not None and args.params:
        raise UsageError("-p sets a capability's parameters: a workflow file holds its steps' own")
    options, problems = _options(args)
    every = args.every or 0
    if every != int(every):
        problems.append(f"--every must be whole seconds, got {every:g}s")
    fields: dict[str, Any] = {
        "cron": args.cron or "",
        "every_seconds": int(every),
        "timezone": args.timezone or "UTC",
        "overlap": args.overlap or DEFAULT_OVERLAP,
        "missed": args.missed or DEFAULT_MISSED,
        "grace_seconds": DEFAULT_GRACE_SECONDS if args.grace is None else args.grace,
        "start_at": args.start_at,
        "paused": args.paused,
        "description": args.description or "",
        "options": options,
    }
    if args.workflow is not None:
        document, broken = _workflow(args.workflow)
        problems += broken
        schedule = Schedule.of_workflow(args.name, document or {}, **fields)
    else:
        # (the `-p` values stay as given until the capability's declared types are known: see `settled`)
        schedule = Schedule(args.name, args.capability, read_params(args.params, sys.stdin), **fields)
    problems += [p for p in schedule.problems() if p not in problems]
    return (None, problems) if problems else (schedule, [])


def _options(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The task options the flags set (a workflow's run has no timeout unless given), and their problems."""
    from worker_abstraction.errors import InvalidTaskOptionsError
    from worker_abstraction.options import TaskOptions

    flags = argparse.Namespace(**vars(args), idempotency_key="", delay=None, at=None)
    try:
        fields = {key: value for key, value in task_options(flags).items() if value is not None}
    except InvalidTaskOptionsError as invalid:
        return TaskOptions(), invalid.problems
    if args.workflow is not None:
        fields.setdefault("timeout_seconds", 0)
    try:
        return TaskOptions(**fields), []
    except InvalidTaskOptionsError as invalid:
        return TaskOptions(), invalid.problems


def _workflow(file: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The workflow file's document, or its problems (each named as the workflow's)."""
    from worker_abstraction.workflows import InvalidWorkflowError, Workflow

    text = _read(file)
    try:
        Workflow.from_json(text)
    except InvalidWorkflowError as invalid:
        return None, [f"workflow {file}: {problem}" for problem in invalid.problems]
    document: dict[str, Any] = json.loads(text)
    return document, []


def _read(file: str) -> str:
    """The text of FILE (or of stdin).

    Raises:
        UsageError: it cannot be read (named).
    """
    try:
        return sys.stdin.read() if file == STDIN else Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read {file}: {reason}") from None


def _json(text: str, file: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{file} is not JSON: {str(exc)[:200]}") from None


async def settled(remote: RemoteOrchestrator, schedule: Schedule) -> Schedule:
    """The schedule with its `-p` values typed as the capability declares them (as `wa submit` sends them)."""
    import dataclasses

    from worker_abstraction.cli.params import Given, settle

    if not any(isinstance(value, Given) for value in schedule.params.values()):
        return schedule
    try:
        workers = await remote.workers()
    except WorkerAbstractionError:
        workers = []
    declared = next((c for w in workers if (c := w.capability(schedule.capability)) is not None), None)
    return dataclasses.replace(schedule, params=settle(schedule.params, declared))
