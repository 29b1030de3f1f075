"""What `wa top` shows (see `top_cmd`): snapshots of an orchestrator daemon, drawn with rich, once or until
Ctrl-C; on a terminal redrawn in place, otherwise printed as plain text one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from worker_abstraction.cli import StopSignals, unreachable
from worker_abstraction.cli.task_cmd import worker_of
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.cli.workers_cmd import age
from worker_abstraction.errors import OrchestratorUnavailableError
from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator
from worker_abstraction.types import TaskRecord, TaskStatus, WorkerHealth, WorkerState

_STATUS_STYLES = {
    TaskStatus.PENDING: "yellow",
    TaskStatus.RUNNING: "cyan",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.CANCELED: "magenta",
}
_CIRCUIT_STYLES = {"closed": "green", "half-open": "yellow", "open": "red"}
_PLAIN_WIDTH = 10_000  # wide enough that a plain snapshot never wraps a cell


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One look at a daemon: its workers, its queue depth per capability and priority, its latest tasks."""

    address: str
    taken_at: datetime
    workers: tuple[WorkerHealth, ...]
    queue: dict[str, dict[int, int]]
    tasks: tuple[TaskRecord, ...]


async def take_snapshot(remote: RemoteOrchestrator, *, tasks: int) -> Snapshot:
    """Ask the daemon for its workers, its queue and its latest `tasks` tasks.

    Raises:
        OrchestratorUnavailableError: the daemon could not be reached.
    """
    workers = await remote.worker_health()
    queue = await remote.queue_depths()
    records = await remote.tasks(limit=tasks) if tasks else []
    return Snapshot(
        address=remote.address,
        taken_at=datetime.now(UTC),
        workers=tuple(sorted(workers, key=lambda h: (h.worker.name, h.worker.worker_id))),
        queue=queue,
        tasks=tuple(records),
    )


def render(snapshot: Snapshot, *, plain: bool = False, problem: str = "") -> RenderableType:
    """The snapshot as one renderable: a heading line, then the workers, the queue and the tasks.

    Args:
        plain: borderless tables, as aligned as the other commands' (for text without a terminal).
        problem: a line shown first, in red (e.g. the daemon stopped answering since the snapshot).
    """
    frame = None if plain else box.SIMPLE_HEAD
    waiting = sum(n for depths in snapshot.queue.values() for n in depths.values())
    heading = Text.assemble(
        ("orchestrator ", "bold"),
        (snapshot.address, "bold cyan"),
        f"  {len(snapshot.workers)} worker{'s' if len(snapshot.workers) != 1 else ''}",
        f", {waiting} waiting",
        f"  at {snapshot.taken_at.astimezone(UTC):%H:%M:%S}Z",
    )
    parts: list[RenderableType] = [Text(problem, style="bold red")] if problem else []
    parts += [heading, Text()]
    parts += _section("WORKERS", _workers_table(snapshot, frame) if snapshot.workers else None, "no live workers")
    parts += _section("QUEUE", _queue_table(snapshot, frame) if waiting else None, "no task is waiting")
    parts += _section("TASKS", _tasks_table(snapshot, frame) if snapshot.tasks else None, "no tasks yet")
    return Group(*parts[:-1])  # no blank line at the end


def render_text(snapshot: Snapshot, *, problem: str = "") -> str:
    """The snapshot as plain text: no colours, no borders, no trailing spaces, cells never cut."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=_PLAIN_WIDTH, color_system=None, force_terminal=False, soft_wrap=False)
    console.print(render(snapshot, plain=True, problem=problem))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def _section(title: str, table: Table | None, empty: str) -> list[RenderableType]:
    if table is None:
        return [Text.assemble((title, "bold"), "  ", (empty, "dim")), Text()]
    return [Text(title, style="bold"), table, Text()]


def _table(frame: box.Box | None, *columns: str) -> Table:
    table = Table(box=frame, pad_edge=frame is not None, padding=(0, 1), header_style="bold", show_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=column != "CAPABILITIES")
    return table


def _workers_table(snapshot: Snapshot, frame: box.Box | None) -> Table:
    table = _table(frame, "ID", "NAME", "STATE", "CIRCUIT", "IN FLIGHT", "CAPABILITIES")
    for health in snapshot.workers:
        worker = health.worker
        active = health.state in (WorkerState.ACTIVE, WorkerState.UNSPECIFIED)
        state = health.state.name + (f" ({health.state_reason})" if health.state_reason else "")
        slots = str(worker.max_concurrent_tasks) if worker.max_concurrent_tasks else "∞"
        table.add_row(
            worker.worker_id,
            worker.name,
            Text(state, style="green" if active else "yellow"),
            Text(health.circuit, style=_CIRCUIT_STYLES.get(health.circuit, "")),
            f"{health.in_flight}/{slots}",
            ",".join(c.name for c in worker.capabilities) or "-",
        )
    return table


def _queue_table(snapshot: Snapshot, frame: box.Box | None) -> Table:
    table = _table(frame, "CAPABILITY", "PRIORITY", "WAITING")
    for capability, depths in sorted(snapshot.queue.items()):
        for priority, waiting in sorted(depths.items(), reverse=True):
            table.add_row(capability, str(priority), str(waiting))
    return table


def _tasks_table(snapshot: Snapshot, frame: box.Box | None) -> Table:
    table = _table(frame, "ID", "CAPABILITY", "STATUS", "WORKER", "AGE")
    for record in snapshot.tasks:
        status = record.status.name
        update = record.last_update
        if record.status is TaskStatus.RUNNING and update is not None and update.progress:
            status += f" {update.progress:.0%}"
        table.add_row(
            record.task_id,
            record.capability,
            Text(status, style=_STATUS_STYLES.get(record.status, "")),
            worker_of(record) or "-",
            age(record.submitted_at, snapshot.taken_at),
        )
    return table


async def show(args: argparse.Namespace) -> int:
    """Show the daemon once or until Ctrl-C; 1 when it cannot be reached at the start."""
    address: str = args.orchestrator
    console = Console()
    async with RemoteOrchestrator(address, tls=tls_of(args), call_timeout_seconds=args.timeout) as remote:
        try:
            snapshot = await take_snapshot(remote, tasks=args.tasks)
        except OrchestratorUnavailableError as exc:
            print(unreachable(exc, address), file=sys.stderr)
            return 1
        if args.once:
            _print(console, snapshot)
            return 0
        with _stop_signals() as stopped:
            if console.is_terminal:
                await _live(console, remote, snapshot, args, stopped)
            else:
                await _batch(console, remote, snapshot, args, stopped)
    return 0


def _print(console: Console, snapshot: Snapshot, problem: str = "") -> None:
    if console.is_terminal:
        console.print(render(snapshot, problem=problem))
    else:
        print(render_text(snapshot, problem=problem), flush=True)


async def _live(
    console: Console, remote: RemoteOrchestrator, snapshot: Snapshot, args: argparse.Namespace, stopped: asyncio.Event
) -> None:
    with Live(render(snapshot), console=console, auto_refresh=False, vertical_overflow="crop") as live:
        while not await _wait(stopped, args.interval):
            snapshot, problem = await _next(remote, snapshot, args)
            live.update(render(snapshot, problem=problem), refresh=True)


async def _batch(
    console: Console, remote: RemoteOrchestrator, snapshot: Snapshot, args: argparse.Namespace, stopped: asyncio.Event
) -> None:
    _print(console, snapshot)
    while not await _wait(stopped, args.interval):
        snapshot, problem = await _next(remote, snapshot, args)
        print(flush=True)
        _print(console, snapshot, problem)


async def _next(remote: RemoteOrchestrator, last: Snapshot, args: argparse.Namespace) -> tuple[Snapshot, str]:
    """The next snapshot; the last one and why when the daemon does not answer (the view goes on)."""
    try:
        return await take_snapshot(remote, tasks=args.tasks), ""
    except OrchestratorUnavailableError as exc:
        return last, unreachable(exc, args.orchestrator) + " (retrying)"


async def _wait(stopped: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less when a stop signal comes; whether one came."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopped.wait()
    return stopped.is_set()


@contextlib.contextmanager
def _stop_signals() -> Iterator[asyncio.Event]:
    """An event set at Ctrl-C or SIGTERM (caught only on the main thread, where signals arrive)."""
    stopped = asyncio.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return
    with StopSignals() as signals:
        signals.received.add_done_callback(lambda _: stopped.set())
        yield stopped
