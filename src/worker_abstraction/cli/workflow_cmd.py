"""Run workflows on an orchestrator daemon and follow them: run a workflow file, see where a run stands, list
runs, watch one, cancel one, rerun one from a step.

  wa workflow run FILE [--id ID] [--idempotency-key KEY] [--priority N] [--wait | --watch] [--json]
        FILE is a workflow in the JSON file format (see the README, "Workflows"), or - for stdin. Prints the
        run's id; --wait blocks until it ends and draws it, --watch prints each step's change as it happens
        first. The whole workflow is checked before anything runs: every problem is listed.
  wa workflow get ID [--json]
        the run drawn by stage: each step with its status, its task count (a map step), what it waits for,
        its output or error; the failed step and why; the run it reruns
  wa workflow list [--status STATUS] [--limit N] [--json]
        runs, most recent first: ID, NAME, STATUS, STEPS (completed/all), FAILED STEP
  wa workflow watch ID [--json]
        each step's change from the first on, until the run ends, then the run drawn
  wa workflow cancel ID [--reason TEXT]
        its running steps are canceled and no other starts
  wa workflow rerun ID STEP [--only-this-step] [--id NEW] [--wait | --watch] [--json]
        a new run of an ended one from STEP: STEP and every step that waits for it run again (only STEP
        with --only-this-step), the other completed steps keep their outputs

With --json: `get` prints the run as one object (WorkflowRecord.to_dict(): workflow_id, workflow, status,
steps {NAME: {capability, status, tasks, output?, error?, kept?}}, failed_step?, error?, rerun_of?), `list`
a list of them; run, rerun and watch print one object per line: {"event": "submitted", "workflow_id",
"workflow", "orchestrator"} (run, rerun), {"event": "step", "workflow_id", "step", "status", "tasks",
"error"?} per step change (--watch, watch), then {"event": "result", ...the run as `get --json`} once it
ended (--wait, --watch, watch), or {"event": "result", "workflow_id": null, "status": null, "error":
{"type", "message", "problems"}} when it was not run.

exit codes: 0 done (run, rerun: accepted, and with --wait or --watch completed; watch: completed; cancel:
canceled); 1 the run failed or was canceled (--wait, --watch, watch), had already ended (cancel), the id is
unknown to the daemon, or the daemon cannot be reached (get, list, watch, cancel) or was lost while
following; 2 not run (run, rerun: an invalid workflow, every problem listed; a rerun of a run that has not
ended or of a step it does not have; an id already taken; the daemon cannot be reached) or a usage error;
130 interrupted (the daemon goes on with the run).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker_abstraction.cli import Interrupted, UsageError, actions_of, positive_int, unless_interrupted, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.task_cmd import STATUS_NAMES, parse_status
from worker_abstraction.errors import (
    InvalidParametersError,
    OrchestratorUnavailableError,
    TaskExistsError,
    TaskNotFoundError,
)

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.workflow_handle import WorkflowHandle
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator
    from worker_abstraction.workflows import Workflow, WorkflowRecord

NAME = "workflow"
SUMMARY = "run a workflow file on an orchestrator daemon; get, list, watch, cancel or rerun workflow runs"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa workflow run examples/etl/etl.json --wait --orchestrator 127.0.0.1:50052
  ID=$(wa workflow run etl.json --idempotency-key etl-2026-12-07) && wa workflow watch "$ID"
  wa workflow get etl-1
  wa workflow list --status failed --limit 10
  wa workflow rerun etl-1 transform --watch
  wa workflow cancel etl-1 --reason "wrong input"
"""

EXIT_OK, EXIT_FAILED, EXIT_NOT_RUN = 0, 1, 2
STDIN = "-"


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    action = actions_of(parser, settings)

    run = action("run", "run a workflow file", "Run the workflow in FILE (JSON; - for stdin) and print its id.")
    run.add_argument("file", metavar="FILE", help="the workflow file (JSON), or - to read it from stdin")
    run.add_argument("--id", dest="workflow_id", default="", metavar="ID", help="the run's id (unset: a new one)")
    run.add_argument(
        "--idempotency-key",
        default="",
        metavar="KEY",
        help="running again with the same KEY gives the first run instead of a new one",
    )
    run.add_argument("--priority", type=int, default=0, help="the priority of its steps' tasks that set none")
    get = action("get", "one run drawn by stage", "Draw one run: its steps by stage, with their statuses.")
    get.add_argument("workflow_id", metavar="ID", help="the id `wa workflow run` printed")
    listing = action("list", "runs, most recent first", "List workflow runs, most recent first.")
    listing.add_argument(
        "--status", type=parse_status, metavar="STATUS", help=f"only runs in this state ({', '.join(STATUS_NAMES)})"
    )
    listing.add_argument("--limit", type=positive_int, default=50, metavar="N", help="show at most N runs")
    watch = action("watch", "follow a run until it ends", "Print each step's change until the run ends, then it.")
    watch.add_argument("workflow_id", metavar="ID", help="the id `wa workflow run` printed")
    cancel = action("cancel", "cancel a run", "Cancel a run: its running steps are canceled, no other starts.")
    cancel.add_argument("workflow_id", metavar="ID", help="the id `wa workflow run` printed")
    cancel.add_argument("--reason", default="canceled from the command line", help="recorded on the run")
    rerun = action(
        "rerun",
        "run an ended run again from a step",
        "Run an ended run again from STEP, as a new run: STEP and every step that waits for it run again, "
        "the other completed steps keep their outputs.",
    )
    rerun.add_argument("workflow_id", metavar="ID", help="the run to rerun (it must have ended)")
    rerun.add_argument("step", metavar="STEP", help="the step to run again")
    rerun.add_argument(
        "--only-this-step",
        action="store_true",
        help="run STEP alone: the steps after it that completed keep their outputs",
    )
    rerun.add_argument("--id", dest="new_id", default="", metavar="NEW", help="the new run's id (unset: a new one)")
    for sub in (run, rerun):
        follow = sub.add_mutually_exclusive_group()
        follow.add_argument("--wait", action="store_true", help="block until the run ends, then draw it")
        follow.add_argument("--watch", action="store_true", help="print each step's change, then draw the run")
    for sub in (run, get, listing, watch, rerun):
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")


async def run(args: argparse.Namespace) -> int:
    """Do what the action asks of the daemon and print it; the exit code described in --help.

    Raises:
        UsageError: FILE cannot be read.
    """
    from worker_abstraction.cli.tls import tls_of
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    definition: Any = None
    if args.action == "run":
        definition, problems = _load(_read(args.file))
        if problems:
            return _not_run(args, InvalidParametersError(problems))
    address: str = args.orchestrator
    submits = args.action in ("run", "rerun")
    try:
        async with RemoteOrchestrator(address, tls=tls_of(args)) as remote:
            if args.action == "run":
                handle = await remote.run_workflow(
                    definition,
                    workflow_id=args.workflow_id,
                    idempotency_key=args.idempotency_key,
                    priority=args.priority,
                )
                return await _submitted(remote, handle, args)
            if args.action == "rerun":
                handle = await remote.rerun_workflow(
                    args.workflow_id, args.step, downstream=not args.only_this_step, new_workflow_id=args.new_id
                )
                return await _submitted(remote, handle, args)
            if args.action == "list":
                return await _list(remote, args)
            if args.action == "cancel":
                return await _cancel(remote, args)
            if args.action == "watch":
                handle = await remote.watch_workflow(args.workflow_id)
                return await _follow(remote, handle, args, watch=True)
            return await _get(remote, args)
    except TaskNotFoundError:
        print(f"no workflow {args.workflow_id!r} on the orchestrator at {address}", file=sys.stderr)
        return EXIT_FAILED
    except (InvalidParametersError, TaskExistsError) as exc:
        return _not_run(args, exc)
    except OrchestratorUnavailableError as exc:
        if submits:
            return _not_run(args, exc)
        print(unreachable(exc, address), file=sys.stderr)
        return EXIT_FAILED


def _read(file: str) -> str:
    """The text of FILE (or of stdin).

    Raises:
        UsageError: it cannot be read (named).
    """
    try:
        text = sys.stdin.read() if file == STDIN else Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read {file}: {reason}") from None
    return text


def _load(text: str) -> tuple[Any, list[str]]:
    """The file's document, and what keeps it from being a workflow at all (the daemon checks the rest,
    against its live workers, and lists every problem it finds)."""
    from worker_abstraction.workflows import InvalidWorkflowError, Workflow

    try:
        Workflow.from_json(text)
    except InvalidWorkflowError as invalid:
        return None, invalid.problems
    return json.loads(text), []


def _not_run(args: argparse.Namespace, exc: Exception) -> int:
    """Say why nothing was run (every problem, one a line); EXIT_NOT_RUN."""
    what = f"the workflow in {args.file}" if args.action == "run" else f"a rerun of {args.workflow_id!r}"
    if isinstance(exc, OrchestratorUnavailableError):
        print(unreachable(exc, args.orchestrator), file=sys.stderr)
    elif isinstance(exc, InvalidParametersError):
        count = len(exc.problems)
        print(f"wa workflow {args.action}: {what} cannot run ({count} problem{'s' if count != 1 else ''}):",
              file=sys.stderr)  # fmt: skip
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
    else:
        print(f"wa workflow {args.action}: {type(exc).__name__}: {exc}", file=sys.stderr)
    if args.json:
        error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, InvalidParametersError):
            error["problems"] = exc.problems
        _print_json({"event": "result", "workflow_id": None, "status": None, "error": error})
    return EXIT_NOT_RUN


async def _submitted(remote: RemoteOrchestrator, handle: WorkflowHandle, args: argparse.Namespace) -> int:
    definition = handle.task.params.get("workflow")
    name = definition.get("workflow", "") if isinstance(definition, Mapping) else ""
    if args.json:
        _print_json({"event": "submitted", "workflow_id": handle.workflow_id, "workflow": name,
                     "orchestrator": remote.address})  # fmt: skip
    elif not (args.wait or args.watch):
        print(handle.workflow_id, flush=True)
    else:
        origin = f", a rerun of {args.workflow_id} from step {args.step}" if args.action == "rerun" else ""
        print(f"workflow {handle.workflow_id} ({name}{origin})", flush=True)
    if not (args.wait or args.watch):
        return EXIT_OK
    return await _follow(remote, handle, args, watch=args.watch)


async def _follow(remote: RemoteOrchestrator, handle: WorkflowHandle, args: argparse.Namespace, *, watch: bool) -> int:
    """Follow the run to its end (printing each step's change when `watch`), then print it; the exit code."""
    from worker_abstraction.cli.workflow_view import describe_step, is_map, step_to_json, workflow_of

    workflow = workflow_of(handle.task.params.get("workflow"))
    if watch and not args.json and args.action == "watch":
        print(f"workflow {handle.workflow_id} ({workflow.name if workflow is not None else ''})", flush=True)

    async def follow() -> WorkflowRecord:
        if watch:
            async for step in handle:
                if args.json:
                    _print_json(step_to_json(handle.workflow_id, step))
                else:
                    print(describe_step(step, mapped=is_map(workflow, step.name)), flush=True)
        return await handle.wait()

    try:
        record = await unless_interrupted(follow())
    except Interrupted as interrupted:
        print(f"interrupted: the orchestrator at {remote.address} still runs workflow {handle.workflow_id}",
              file=sys.stderr)  # fmt: skip
        print(f"  {_hints(handle.workflow_id, remote.address)}", file=sys.stderr, flush=True)
        return interrupted.exit_code
    except OrchestratorUnavailableError as exc:
        print(f"{unreachable(exc, remote.address)}; {_hints(handle.workflow_id, remote.address)}", file=sys.stderr)
        return EXIT_FAILED
    if not args.json:
        print(flush=True)  # (the drawing apart from the lines before it)
    _print_record(record, workflow, args, event=True)
    if record.status.name != "COMPLETED":
        print(f"workflow {record.workflow_id} {record.status.name}: {record.error or 'canceled'}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _hints(workflow_id: str, address: str) -> str:
    return (
        f"follow it: wa workflow watch {workflow_id} --orchestrator {address}; "
        f"cancel it: wa workflow cancel {workflow_id} --orchestrator {address}"
    )


async def _get(remote: RemoteOrchestrator, args: argparse.Namespace) -> int:
    from worker_abstraction.cli.workflow_view import workflow_of

    record = await remote.workflow(args.workflow_id)
    params = (await remote.task(args.workflow_id)).params  # (the run's task holds its definition)
    definition = params.get("workflow") if isinstance(params, Mapping) else None
    _print_record(record, workflow_of(definition), args, event=False)
    return EXIT_OK


def _print_record(record: WorkflowRecord, workflow: Workflow | None, args: argparse.Namespace, *, event: bool) -> None:
    from worker_abstraction.cli.workflow_view import record_to_json, render, show

    if not args.json:
        show(render, record, workflow)
    elif event:
        _print_json(record_to_json(record, event="result"))
    else:
        print(json.dumps(record_to_json(record), indent=2, ensure_ascii=False, default=str), flush=True)


async def _list(remote: RemoteOrchestrator, args: argparse.Namespace) -> int:
    from worker_abstraction.cli.workflow_view import record_to_json, render_list, show

    records = await remote.workflows(status=args.status, limit=args.limit)
    # A listed run that is still going names only its latest step change: ask where it stands.
    records = [r if r.status.is_terminal else await remote.workflow(r.workflow_id) for r in records]
    if args.json:
        print(json.dumps([record_to_json(r) for r in records], indent=2, ensure_ascii=False, default=str))
    else:
        show(render_list, records)
    return EXIT_OK


async def _cancel(remote: RemoteOrchestrator, args: argparse.Namespace) -> int:
    if await remote.cancel_workflow(args.workflow_id, args.reason):
        print(f"workflow {args.workflow_id}: canceled: its running steps are canceled and no other starts")
        return EXIT_OK
    ended = (await remote.task(args.workflow_id)).status.name
    print(f"workflow {args.workflow_id}: already ended ({ended})")
    return EXIT_FAILED


def _print_json(document: Mapping[str, Any]) -> None:
    print(json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str), flush=True)
