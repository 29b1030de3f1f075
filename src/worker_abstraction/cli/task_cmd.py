"""Look up the tasks an orchestrator daemon holds or remembers: one task, a list, or one task's updates live.

  wa task get TASK_ID [--json]   where it stands: capability, status, worker, submitted, output or error,
                                 cancel reason, dead-lettered, idempotency key, approval (when needed);
                                 then one line per attempt (number, worker, start, duration, status,
                                 error), then each question its handler asked with its answer (value, by
                                 whom, when)
  wa task list [--status S ...] [--capability NAME] [--worker ID] [--since WHEN] [--until WHEN]
               [--id PREFIX] [--limit N | --all] [--json]
                                 a table, newest first: ID, CAPABILITY, STATUS, ATTEMPTS, WORKER,
                                 SUBMITTED and RESULT (the output, the error or the progress, shortened);
                                 the filters reach every task the daemon stores, not only recent ones
  wa task watch TASK_ID          one line per update (status, progress and its message, attempt, worker)
                                 from the first to the terminal one, then the output as JSON; the error
                                 of a task that did not complete goes to stderr

STATUS is pending, running, completed, failed, canceled, input_required (its handler asked a question:
`wa respond`) or approval_required (it waits for `wa approve` / `wa deny`), in any case; --status may be
repeated or given several values. WHEN is an ISO 8601 instant (2024-05-01T12:00:00+02:00; without an
offset: UTC) or a time ago (90s, 15m, 2h, 7d); --since is inclusive, --until exclusive. --worker names the
worker of the task's latest attempt (its id, as WORKER shows it).

With --json, `get` prints one object and `list` a list of them, with the keys task_id, capability, status,
params, output (decoded), error_message, worker_id, submitted_at, attempts (number, worker_id, started_at,
ended_at, status, error_message; times in ISO 8601, or null), dead_lettered, cancel_reason, idempotency_key,
owner (the principal that submitted it; empty without credentials), inputs (request {request_id, prompt,
schema, deadline}, answer {request_id, value, answered_by, answered_at} or null, asked_at, attempt),
approval ({approved, decided_by, reason, decided_at} or null) and approval_required.

exit codes: 0 found (`watch`: the task completed); 1 the task is unknown to the daemon, the daemon cannot
be reached, or (`watch`) the task failed or was canceled; 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from worker_abstraction.cli import add_orchestrator_argument, positive_int, unknown_task, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.exchanges_view import approval_fact, exchange_lines, exchanges_to_json, waiting_outcome
from worker_abstraction.cli.output import is_output, iso, print_error, status_line
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.cli.workers_cmd import age
from worker_abstraction.errors import OrchestratorUnavailableError, TaskNotFoundError, WorkerAbstractionError
from worker_abstraction.types import MAX_PAGE, Attempt, TaskRecord, TaskStatus, TaskUpdate

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

NAME = "task"
SUMMARY = "show one task, list tasks, or watch a task's updates on an orchestrator daemon"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa task get 5919c1f0d4e44c5f9d0f3a8be0c1d2e3 --orchestrator 127.0.0.1:50052
  wa task list --status failed canceled --capability word_count --limit 20
  wa task list --all --json | jq '.[] | select(.dead_lettered) | .task_id'
  wa task list --status failed --worker 3f9a0c1e --since 2h
  wa task list --id 0190c2
  wa task list --status input_required approval_required
  wa task watch 5919c1f0d4e44c5f9d0f3a8be0c1d2e3
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STATUS_NAMES = tuple(s.name.lower() for s in TaskStatus if s is not TaskStatus.UNKNOWN)
_COLUMNS = ("ID", "CAPABILITY", "STATUS", "ATTEMPTS", "WORKER", "SUBMITTED", "RESULT")
_RESULT_WIDTH = 60  # the RESULT cell is cut to this many characters


def parse_status(text: str) -> TaskStatus:
    """A --status value, case-insensitive; anything else is a usage error naming the valid ones."""
    status = TaskStatus.__members__.get(text.strip().upper())
    if status is None or status is TaskStatus.UNKNOWN:
        raise argparse.ArgumentTypeError(f"unknown status {text!r}; choose from {', '.join(STATUS_NAMES)}")
    return status


_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_when(text: str) -> datetime:
    """A --since/--until value: an ISO 8601 instant (naive: UTC) or a time ago such as 15m, 2h or 7d."""
    ago = _AGO.fullmatch(text.strip())
    if ago is not None:
        return datetime.now(UTC) - timedelta(seconds=float(ago[1]) * _UNIT_SECONDS[ago[2]])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 instant or a time ago like 15m, 2h, 7d; got {text[:40]!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    get = actions.add_parser(
        "get",
        help="one task: where it stands and every attempt",
        description="Show one task: where it stands, its outcome and every attempt (or one JSON object).",
        formatter_class=parser.formatter_class,
    )
    get.add_argument("task_id", metavar="TASK_ID", help="the id `wa submit` printed")
    listing = actions.add_parser(
        "list",
        help="tasks, newest first",
        description="List tasks, most recently submitted first, as a table (or a JSON list).",
        formatter_class=parser.formatter_class,
    )
    listing.add_argument(
        "--status",
        nargs="+",
        action="extend",
        type=parse_status,
        metavar="STATUS",
        help=f"only tasks in these states ({', '.join(STATUS_NAMES)}); repeatable",
    )
    listing.add_argument("--capability", metavar="NAME", help="only tasks of this capability")
    listing.add_argument("--worker", metavar="ID", help="only tasks whose latest attempt went to this worker")
    listing.add_argument(
        "--since",
        type=parse_when,
        metavar="WHEN",
        help="only tasks submitted at or after WHEN: an ISO 8601 instant (no offset: UTC) or a time ago (15m, 2h, 7d)",
    )
    listing.add_argument("--until", type=parse_when, metavar="WHEN", help="only tasks submitted before WHEN")
    listing.add_argument("--id", dest="id_prefix", metavar="PREFIX", help="only tasks whose id starts with PREFIX")
    listing.add_argument("--limit", type=positive_int, default=50, metavar="N", help="show at most N tasks")
    listing.add_argument("--all", action="store_true", help="show every task, ignoring --limit")
    watch = actions.add_parser(
        "watch",
        help="follow a task's updates until it ends",
        description="Print a task's updates from the first to the terminal one, then its output; "
        "exit 0 when it completed, 1 otherwise.",
        formatter_class=parser.formatter_class,
    )
    watch.add_argument("task_id", metavar="TASK_ID", help="the id `wa submit` printed")
    for sub in (get, listing, watch):
        add_orchestrator_argument(sub, settings)
    for sub in (get, listing):
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")


async def run(args: argparse.Namespace) -> int:
    """Ask the daemon and print the answer; return the exit code described in --help."""
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    address: str = args.orchestrator
    try:
        async with RemoteOrchestrator(address, tls=tls_of(args)) as remote:
            if args.action == "list":
                return await _list(remote, args)
            record = await remote.task(args.task_id)
            if args.action == "get":
                print(json.dumps(record_to_json(record), indent=2, ensure_ascii=False) if args.json else render(record))
                return EXIT_OK
            return await _watch(remote, record)
    except TaskNotFoundError:
        print(unknown_task(args.task_id, address), file=sys.stderr)
    except OrchestratorUnavailableError as exc:
        print(unreachable(exc, address), file=sys.stderr)
    return EXIT_FAILED


async def _list(remote: RemoteOrchestrator, args: argparse.Namespace) -> int:
    if args.since is not None and args.until is not None and args.since > args.until:
        print("wa task list: --since is after --until: no task can match", file=sys.stderr)
        return EXIT_USAGE
    wanted: int | None = None if args.all else args.limit
    records: list[TaskRecord] = []
    seen: set[str] = set()
    more = True
    while more and (wanted is None or len(records) < wanted):
        size = MAX_PAGE if wanted is None else min(MAX_PAGE, wanted - len(records))
        page, more = await remote.task_page(
            status=args.status,
            capability=args.capability,
            worker_id=args.worker,
            since=args.since,
            until=args.until,
            task_id_prefix=args.id_prefix,
            limit=size,
            offset=len(records),
        )
        # Tasks submitted meanwhile shift the pages by as many: a task is listed once.
        records += [r for r in page if r.task_id not in seen]
        seen.update(r.task_id for r in page)
        more = more and bool(page)
    if args.json:
        print(json.dumps([record_to_json(r) for r in records], indent=2, ensure_ascii=False))
        return EXIT_OK
    print(render_table(records, datetime.now(UTC)))
    if more:
        print(f"(only the newest {len(records)} shown: use --limit N or --all for more)", file=sys.stderr)
    return EXIT_OK


async def _watch(remote: RemoteOrchestrator, record: TaskRecord) -> int:
    print(f"task {record.task_id} ({record.capability})", flush=True)
    handle = await remote.watch(record.task_id)
    try:
        async for update in handle:
            if not is_output(update):  # (a streamed chunk is no change of status)
                print(describe_update(update), flush=True)
        output = await handle.result()
    except (WorkerAbstractionError, TimeoutError) as exc:
        print_error(exc)
        return EXIT_FAILED
    print(json.dumps(output, indent=2, ensure_ascii=False), flush=True)
    return EXIT_OK


def describe_update(update: TaskUpdate) -> str:
    """One `watch` line: the status (with progress) as `wa submit` shows it, then attempt and worker."""
    where = [f"attempt {update.attempt}"] if update.attempt else []
    where += [f"worker {update.worker_id}"] if update.worker_id else []
    return f"{status_line(update)}  ({', '.join(where)})" if where else status_line(update)


def worker_of(record: TaskRecord) -> str:
    """The worker of the latest attempt ('' when none ran it yet)."""
    if record.attempts:
        return record.attempts[-1].worker_id
    return record.last_update.worker_id if record.last_update is not None else ""


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def attempt_to_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "worker_id": attempt.worker_id,
        "started_at": iso(attempt.started_at),
        "ended_at": iso(attempt.ended_at),
        "status": attempt.status.name,
        "error_message": attempt.error_message,
    }


def record_to_json(record: TaskRecord) -> dict[str, Any]:
    """The `--json` form of one task."""
    return {
        "task_id": record.task_id,
        "capability": record.capability,
        "status": record.status.name,
        "params": record.params,
        "output": record.output,
        "error_message": record.error_message,
        "worker_id": worker_of(record),
        "submitted_at": iso(record.submitted_at),
        "attempts": [attempt_to_json(a) for a in record.attempts],
        "dead_lettered": record.dead_lettered,
        "cancel_reason": record.cancel_reason,
        "idempotency_key": record.idempotency_key,
        "owner": record.owner,
        "not_before": iso(record.not_before),
        "expires_at": iso(record.expires_at),
        **exchanges_to_json(record),
    }


def _outcome(record: TaskRecord) -> str:
    """The output of a completed task as compact JSON, an error, or the progress of a running one."""
    if record.status is TaskStatus.COMPLETED:
        return json.dumps(record.output, ensure_ascii=False, separators=(",", ":"))
    if record.error_message or record.cancel_reason:
        return record.error_message or f"cancel requested: {record.cancel_reason}"
    update = record.last_update
    if record.status is TaskStatus.RUNNING and update is not None and (update.progress or update.progress_message):
        return f"{update.progress:.0%} {update.progress_message}".rstrip()
    return waiting_outcome(record)


def _shorten(text: str, width: int = _RESULT_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def render(record: TaskRecord, now: datetime | None = None) -> str:
    """The text form of `wa task get`: one `key  value` line per fact, then one line per attempt."""
    now = now or datetime.now(UTC)
    submitted = f"{_when(record.submitted_at)} ({age(record.submitted_at, now)})" if record.submitted_at else "-"
    facts = [
        ("task", record.task_id),
        ("capability", record.capability),
        ("status", record.status.name),
        ("worker", worker_of(record) or "-"),
        ("submitted", submitted),
    ]
    if record.not_before is not None:
        ahead = (record.not_before - now).total_seconds()
        when = (
            f"in {ahead:.1f}s"
            if 0 < ahead < 60
            else (f"in {ahead / 60:.0f}m" if ahead > 0 else age(record.not_before, now))
        )
        facts.append(("not before", f"{_when(record.not_before)} ({when})"))
    if record.status is TaskStatus.COMPLETED:
        facts.append(("output", json.dumps(record.output, ensure_ascii=False)))
    elif record.error_message:
        facts.append(("error", record.error_message))
    facts += [
        ("cancel reason", record.cancel_reason or "-"),
        ("dead-lettered", "yes" if record.dead_lettered else "no"),
        ("idempotency key", record.idempotency_key or "-"),
    ]
    if record.owner:
        facts.append(("owner", record.owner))
    if (approval := approval_fact(record)) is not None:
        facts.append(("approval", approval))
    if record.expires_at is not None:
        facts.append(("expires", _when(record.expires_at)))
    width = max(len(key) for key, _ in facts)
    lines = [f"{key:<{width}}  {value}" for key, value in facts]
    lines.append(f"attempts ({len(record.attempts)}):" if record.attempts else "attempts: none yet")
    rows = [_attempt_row(a, now) for a in record.attempts]
    lines += ["  " + line for line in _align(rows)]
    lines += exchange_lines(record, now)
    return "\n".join(lines)


def _attempt_row(attempt: Attempt, now: datetime) -> tuple[str, ...]:
    if attempt.ended_at is not None:
        took = f"took {_duration((attempt.ended_at - attempt.started_at).total_seconds())}"
    else:
        took = f"running for {_duration(max(0.0, (now - attempt.started_at).total_seconds()))}"
    return (f"#{attempt.number}", attempt.worker_id or "-", _when(attempt.started_at), took, attempt.status.name,
            attempt.error_message)  # fmt: skip


def _align(rows: Sequence[tuple[str, ...]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def render_table(records: list[TaskRecord], now: datetime) -> str:
    """The tasks as an aligned text table with a header row, in the order given."""
    rows = [_COLUMNS] + [
        (
            r.task_id,
            r.capability,
            r.status.name,
            str(len(r.attempts)),
            worker_of(r) or "-",
            age(r.submitted_at, now),
            _shorten(_outcome(r)) or "-",
        )
        for r in records
    ]
    return "\n".join(_align(rows))
