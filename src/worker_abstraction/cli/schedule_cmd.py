"""Keep schedules on an orchestrator daemon: a task (or a workflow) it runs on a cron expression or every so
many seconds, each occurrence once, as the task NAME@OCCURRENCE (e.g. nightly@20261208T010000Z).

  wa schedule add NAME CAPABILITY [-p KEY=VALUE ...] (--cron EXPR | --every DURATION) [OPTIONS]
  wa schedule add NAME --workflow FILE (--cron EXPR | --every DURATION) [OPTIONS]
  wa schedule add [NAME] --from-json FILE
        make a schedule, then print it and its next occurrences. -p works as in `wa submit`; --workflow
        runs a workflow file (see `wa workflow run`); --from-json takes the schedule's JSON form whole (what
        `get --json` prints is taken too; NAME, when given, renames it). Every problem is listed.
  wa schedule update ...          the same arguments: replaces the definition (what it fired so far is kept;
                                  paused or not, it stays so unless --paused, or --from-json unpauses it)
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
import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from worker_abstraction.cli import Interrupted, actions_of, unless_interrupted, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.schedule_definition import add_definition_arguments, definition, settled
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
CHANGES = ("add", "update", "trigger")  # the actions a daemon out of reach keeps from being done (exit 2)
STATUS_READS = 16  # task reads at once for the list's LAST RUN statuses


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    action = actions_of(parser, settings)

    add = action("add", "make a schedule", "Make a schedule, then print it and its next occurrences.")
    update = action(
        "update", "replace a schedule's definition", "Replace a schedule's definition; what it fired so far is kept."
    )
    for sub in (add, update):
        add_definition_arguments(sub)
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


async def run(args: argparse.Namespace) -> int:
    """Do what the action asks of the daemon and print it; the exit code described in --help.

    Raises:
        UsageError: arguments that do not fit together, or a file that cannot be read.
    """
    from worker_abstraction.cli.tls import tls_of
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    made: Schedule | None = None
    if args.action in ("add", "update"):
        made, problems = definition(args)
        if problems:
            return _not_made(args, InvalidParametersError(problems))
    address: str = args.orchestrator
    try:
        async with RemoteOrchestrator(address, tls=tls_of(args)) as remote:
            if made is not None:
                return await _define(remote, args, await settled(remote, made))
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


async def _define(remote: RemoteOrchestrator, args: argparse.Namespace, schedule: Schedule) -> int:
    if args.action == "add":
        info = await remote.add_schedule(schedule)
    else:
        info = await _update(remote, args, schedule)
    _print_info(args, info, await _status(remote, info), upcoming=True)
    return EXIT_OK


async def _update(remote: RemoteOrchestrator, args: argparse.Namespace, schedule: Schedule) -> ScheduleInfo:
    """Replace the definition. From flags, a paused schedule stays paused and an active one active (--paused
    pauses it); a JSON form that unpauses a paused one resumes it, as `resume` does: what passed while it was
    paused never runs (an update that merely unpaused it would count those occurrences as missed)."""
    import dataclasses

    current = await remote.schedule(schedule.name)
    if args.from_json is None and not args.paused:
        schedule = dataclasses.replace(schedule, paused=current.schedule.paused)
    if not (current.schedule.paused and not schedule.paused):
        return await remote.update_schedule(schedule)
    await remote.update_schedule(dataclasses.replace(schedule, paused=True))
    return await remote.resume_schedule(schedule.name)


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

    try:
        output = await unless_interrupted(follow())
    except Interrupted as interrupted:
        task, address = handle.task_id, remote.address
        print(f"interrupted: the orchestrator at {address} still runs task {task}", file=sys.stderr)
        hints = f"follow it: wa task watch {task} --orchestrator {address}; cancel it: wa cancel {task}"
        print(f"  {hints} --orchestrator {address}", file=sys.stderr)
        return interrupted.exit_code
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
