"""Keep schedules on an orchestrator daemon: a task (or a workflow) it runs on a cron expression or every so
many seconds, each occurrence once, as the task NAME@OCCURRENCE (e.g. nightly@20261208T010000Z).

  wa schedule add NAME CAPABILITY [-p KEY=VALUE ...] (--cron EXPR | --every DURATION) [OPTIONS]
  wa schedule add NAME --workflow FILE (--cron EXPR | --every DURATION) [OPTIONS]
  wa schedule add [NAME] --from-json FILE
        make a schedule, then print it and its next occurrences. -p works as in `wa submit`; --workflow
        runs a workflow file (see `wa workflow run`); --from-json takes the schedule's JSON form whole (what
        `get --json` prints is taken too; NAME, when given, renames it). Every problem is listed.
  wa schedule update ...          the same arguments: replaces the definition (what it fired so far is kept)
  wa schedule list [--json]       NAME, RUNS, TIMING, NEXT, LAST RUN (its status), FIRED, SKIPPED, PAUSED
  wa schedule get NAME [--json]   every fact, the last error if any, and the next 5 occurrences
  wa schedule pause NAME          it fires nothing until resumed
  wa schedule resume NAME [--run-now]
                                  it fires again from now on (what passed while paused never runs; with
                                  --run-now, one run now)
  wa schedule remove NAME         its runs so far stay
  wa schedule trigger NAME [--wait] [--json]
                                  one run now, whatever its timing: prints the run's task id; --wait follows
                                  it as `wa submit` does

OPTIONS: --timezone TZ (IANA, the zone a cron expression is read in), --overlap skip|buffer_one|allow_all (an
occurrence while the previous run goes), --missed skip|latest|all (occurrences missed while no orchestrator
was up; all: those within --grace), --start-at TIME, --paused, --description TEXT, and the task's own:
--timeout, --priority, --queue-timeout, --retries, --retry-task-errors, --require-tag, --prefer-tag,
--worker-id, --fairness-key. DURATION is 90, 30s, 5m, 2h or 1d (--every: whole seconds). Times are shown
in the schedule's time zone.

With --json: add, update, get, pause and resume print the schedule as one object (ScheduleInfo.to_dict():
the definition, created_at, resumed_at, last_occurrence, last_run, fired, skipped, last_error, owner,
next_occurrence; and last_run_status; add, update and get also next_occurrences), list prints a list of
them; trigger prints {"event": "submitted", "task_id", "schedule", "orchestrator"}, and with --wait one
{"event": "update", ...} per update and {"event": "result", ...} as `wa submit --json` does.

exit codes: 0 done (trigger --wait: the run completed); 1 no schedule of that name, the daemon cannot be
reached (list, get, pause, resume, remove), or the run did not complete (trigger --wait); 2 not done (add,
update: an invalid schedule, every problem listed, or a name taken; add, update, trigger: the daemon cannot
be reached) or a usage error; 130 interrupted (the daemon goes on with the run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker_abstraction.cli import (
    StopSignals,
    UsageError,
    add_orchestrator_argument,
    non_negative_int,
    times,
    unreachable,
)
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.submit_cmd import parse_param, read_params, task_options
from worker_abstraction.errors import (
    InvalidParametersError,
    OrchestratorUnavailableError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    WorkerAbstractionError,
)

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator
    from worker_abstraction.schedules import Schedule, ScheduleInfo

NAME = "schedule"
SUMMARY = "fire a task or a workflow on a cron expression or an interval: add, list, get, pause, resume, trigger"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa schedule add nightly report -p day=yesterday --cron "0 2 * * *" --timezone Europe/Paris
  wa schedule add heartbeat ping --every 30s --overlap skip --timeout 10
  wa schedule add etl-hourly --workflow examples/etl/etl.json --cron @hourly --missed all --grace 6h
  wa schedule get nightly --json > nightly.json && wa schedule update --from-json nightly.json
  wa schedule list
  wa schedule pause nightly && wa schedule resume nightly --run-now
  wa schedule trigger nightly --wait
"""

EXIT_OK, EXIT_FAILED, EXIT_NOT_DONE = 0, 1, 2
STDIN = "-"
OVERLAP = ("skip", "buffer_one", "allow_all")  # (as `schedules.model`; a test keeps them equal)
MISSED = ("skip", "latest", "all")
DEFAULT_OVERLAP, DEFAULT_MISSED, DEFAULT_GRACE_SECONDS = "skip", "latest", 3600.0
CHANGES = ("add", "update", "trigger")  # the actions a daemon out of reach keeps from being done (exit 2)
STATUS_READS = 16  # task reads at once for the list's LAST RUN statuses
# The flags that define a schedule, besides --from-json (which gives it whole): their values when not given.
_DEFINING: dict[str, Any] = {
    "capability": None, "params": [], "workflow": None, "cron": None, "every": None, "timezone": None,
    "overlap": None, "missed": None, "grace": None, "start_at": None, "paused": False, "description": None,
    "timeout": None, "priority": None, "queue_timeout": None, "retries": None, "retry_task_errors": False,
    "require_tag": [], "prefer_tag": [], "worker_id": None, "fairness_key": None,
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        made = actions.add_parser(name, help=summary, description=description, formatter_class=parser.formatter_class)
        add_orchestrator_argument(made, settings)
        return made

    add = action("add", "make a schedule", "Make a schedule, then print it and its next occurrences.")
    update = action(
        "update", "replace a schedule's definition", "Replace a schedule's definition; what it fired so far is kept."
    )
    for sub in (add, update):
        _add_definition_arguments(sub)
    listing = action("list", "every schedule, by name", "List the schedules, by name.")
    get = action("get", "one schedule, every fact", "Show one schedule: every fact and its next occurrences.")
    pause = action("pause", "fire nothing until resumed", "Pause a schedule: it fires nothing until resumed.")
    resume = action(
        "resume",
        "fire again from now on",
        "Resume a schedule: it fires again from now on; what passed while it was paused never runs.",
    )
    resume.add_argument("--run-now", action="store_true", help="and run it once now")
    remove = action("remove", "remove a schedule", "Remove a schedule; its runs so far stay.")
    trigger = action(
        "trigger", "run it once now", "Run the schedule's task once now, whatever its timing; print the run's id."
    )
    trigger.add_argument("--wait", action="store_true", help="follow the run to its end, as `wa submit` does")
    for sub in (get, pause, resume, remove, trigger):
        sub.add_argument("name", metavar="NAME", help="the schedule's name")
    for sub in (add, update, listing, get, pause, resume, trigger):
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")


def _add_definition_arguments(parser: argparse.ArgumentParser) -> None:
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
    task.add_argument("--priority", type=int, help="higher runs first when workers are busy (0)")
    task.add_argument("--queue-timeout", type=float, metavar="SECONDS", help="fail it if no worker takes it in time")
    task.add_argument("--retries", type=non_negative_int, metavar="N", help="retry a failed attempt up to N times")
    task.add_argument("--retry-task-errors", action="store_true", help="also retry when the task itself failed")
    task.add_argument("--require-tag", action="append", default=[], metavar="TAG", help="only workers with this tag")
    task.add_argument("--prefer-tag", action="append", default=[], metavar="TAG", help="prefer workers with this tag")
    task.add_argument("--worker-id", metavar="ID", help="run only on this worker")
    task.add_argument("--fairness-key", metavar="KEY", help="e.g. a tenant: keys of equal priority take turns")


async def run(args: argparse.Namespace) -> int:
    """Do what the action asks of the daemon and print it; the exit code described in --help.

    Raises:
        UsageError: arguments that do not fit together, or a file that cannot be read.
    """
    from worker_abstraction.cli.tls import tls_of
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    made: Schedule | None = None
    if args.action in ("add", "update"):
        made, problems = _definition(args)
        if problems:
            return _not_made(args, InvalidParametersError(problems))
    address: str = args.orchestrator
    try:
        async with RemoteOrchestrator(address, tls=tls_of(args)) as remote:
            if made is not None:
                return await _define(remote, args, await _settled(remote, made))
            if args.action == "list":
                return await _list(remote, args)
            if args.action == "get":
                info = await remote.schedule(args.name)
                _print_info(args, info, await _status(remote, info), upcoming=True)
                return EXIT_OK
            if args.action == "pause":
                return _paused(args, await remote.pause_schedule(args.name))
            if args.action == "resume":
                return _resumed(args, await remote.resume_schedule(args.name, run_now=args.run_now))
            if args.action == "remove":
                if not await remote.remove_schedule(args.name):
                    raise ScheduleNotFoundError(args.name)
                print(f"schedule {args.name}: removed (its runs so far stay)")
                return EXIT_OK
            return await _trigger(remote, args)
    except ScheduleNotFoundError:
        print(f"no schedule {args.name!r} on the orchestrator at {address}", file=sys.stderr)
        return EXIT_FAILED
    except (InvalidParametersError, ScheduleExistsError) as exc:
        return _not_made(args, exc)
    except OrchestratorUnavailableError as exc:
        print(unreachable(exc, address), file=sys.stderr)
        return EXIT_NOT_DONE if args.action in CHANGES else EXIT_FAILED


# ---- add, update ---------------------------------------------------------------------------------------


def _definition(args: argparse.Namespace) -> tuple[Schedule | None, list[str]]:
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
        # (the `-p` values stay as given until the capability's declared types are known: see `_settled`)
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


async def _settled(remote: RemoteOrchestrator, schedule: Schedule) -> Schedule:
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


async def _define(remote: RemoteOrchestrator, args: argparse.Namespace, schedule: Schedule) -> int:
    if args.action == "add":
        info = await remote.add_schedule(schedule)
    else:
        info = await remote.update_schedule(schedule)
    _print_info(args, info, await _status(remote, info), upcoming=True)
    return EXIT_OK


def _not_made(args: argparse.Namespace, exc: WorkerAbstractionError) -> int:
    """Say why the schedule was not made (every problem, one a line); EXIT_NOT_DONE."""
    if isinstance(exc, InvalidParametersError) and args.action in ("add", "update"):
        what = f"schedule {args.name!r}" if getattr(args, "name", None) else "the schedule"
        count = len(exc.problems)
        print(f"wa schedule {args.action}: {what} cannot be made ({count} problem{'s' if count != 1 else ''}):",
              file=sys.stderr)  # fmt: skip
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
    else:
        print(f"wa schedule {args.action}: {type(exc).__name__}: {exc}", file=sys.stderr)
    if getattr(args, "json", False):
        error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, InvalidParametersError):
            error["problems"] = exc.problems
        _print_json({"error": error})
    return EXIT_NOT_DONE


# ---- list, get, pause, resume ------------------------------------------------------------------------


async def _status(remote: RemoteOrchestrator, info: ScheduleInfo) -> str:
    """The status of the schedule's latest run ("" when it has none; "?" when the daemon forgot it)."""
    if not info.state.last_run:
        return ""
    try:
        return (await remote.task(info.state.last_run)).status.name
    except WorkerAbstractionError:
        return "?"


async def _list(remote: RemoteOrchestrator, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from worker_abstraction.cli.schedule_view import info_to_json, render_table

    infos = await remote.schedules()
    reads = asyncio.Semaphore(STATUS_READS)

    async def status(info: ScheduleInfo) -> str:
        async with reads:
            return await _status(remote, info)

    statuses = dict(zip([i.name for i in infos], await asyncio.gather(*map(status, infos)), strict=True))
    if args.json:
        documents = [info_to_json(info, statuses[info.name]) for info in infos]
        print(json.dumps(documents, indent=2, ensure_ascii=False, default=str))
    elif infos:
        print(render_table(infos, statuses, datetime.now(UTC)))
    else:
        print("no schedules", file=sys.stderr)
    return EXIT_OK


def _print_info(args: argparse.Namespace, info: ScheduleInfo, status: str, *, upcoming: bool = False) -> None:
    from worker_abstraction.cli.schedule_view import info_to_json, render

    if args.json:
        document = info_to_json(info, status, upcoming=upcoming)
        print(json.dumps(document, indent=2, ensure_ascii=False, default=str))
    else:
        print(render(info, status))


def _paused(args: argparse.Namespace, info: ScheduleInfo) -> int:
    if args.json:
        _print_info(args, info, "")
    else:
        print(f"schedule {info.name}: paused: it fires nothing until resumed")
    return EXIT_OK


def _resumed(args: argparse.Namespace, info: ScheduleInfo) -> int:
    from datetime import UTC, datetime

    from worker_abstraction.cli.schedule_view import moment, relative

    if args.json:
        _print_info(args, info, "")
        return EXIT_OK
    said = f"schedule {info.name}: resumed"
    upcoming = info.next_occurrence
    if upcoming is not None:
        said += f": next at {moment(upcoming, info.schedule.timezone)} ({relative(upcoming, datetime.now(UTC))})"
    if args.run_now:
        said += f"; one run now: {info.state.last_run}"
    print(said)
    return EXIT_OK


# ---- trigger -------------------------------------------------------------------------------------------


async def _trigger(remote: RemoteOrchestrator, args: argparse.Namespace) -> int:
    handle = await remote.trigger_schedule(args.name)
    if args.json:
        _print_json({"event": "submitted", "task_id": handle.task_id, "schedule": args.name,
                     "orchestrator": remote.address})  # fmt: skip
    elif args.wait:
        print(f"task {handle.task_id} (schedule {args.name})", flush=True)
    else:
        print(handle.task_id, flush=True)
    if not args.wait:
        return EXIT_OK
    return await _follow(remote, handle, args)


async def _follow(remote: RemoteOrchestrator, handle: AsyncTaskHandle, args: argparse.Namespace) -> int:
    """Print the run's updates until it ends, then its output (as `wa submit`); the exit code."""
    from worker_abstraction.cli.output import error_to_json, print_error, status_line, update_to_json

    async def follow() -> Any:
        async for update in handle:
            if args.json:
                _print_json(update_to_json(update))
            else:
                print(status_line(update), flush=True)
        return await handle.result()

    with contextlib.ExitStack() as stack:
        signals = StopSignals()
        if threading.current_thread() is threading.main_thread():  # only there can signals be caught
            stack.enter_context(signals)
        following = asyncio.ensure_future(follow())
        waiters: set[asyncio.Future[Any]] = {following, signals.received}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not following.done():
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
            task, address = handle.task_id, remote.address
            print(f"interrupted: the orchestrator at {address} still runs task {task}", file=sys.stderr)
            hints = f"follow it: wa task watch {task} --orchestrator {address}; cancel it: wa cancel {task}"
            print(f"  {hints} --orchestrator {address}", file=sys.stderr)
            return 128 + int(signals.received.result())
    try:
        output = following.result()
    except (WorkerAbstractionError, TimeoutError) as exc:
        if isinstance(exc, OrchestratorUnavailableError):
            print(unreachable(exc, remote.address), file=sys.stderr)
        else:
            print_error(exc)
        if args.json:
            _print_json({"event": "result", "task_id": handle.task_id, "status": handle.status.name,
                         "error": error_to_json(exc)})  # fmt: skip
        return EXIT_FAILED
    if args.json:
        _print_json({"event": "result", "task_id": handle.task_id, "status": handle.status.name, "output": output})
    else:
        print(json.dumps(output, indent=2, ensure_ascii=False), flush=True)
    return EXIT_OK


def _print_json(document: Mapping[str, Any]) -> None:
    print(json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str), flush=True)
