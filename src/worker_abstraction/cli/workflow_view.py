"""What `wa workflow` draws (see `workflow_cmd`): a workflow run's steps by stage, a list of runs, and one line
per step change; with rich, in colour on a terminal and as plain aligned text otherwise.

A step's stage is one more than the latest stage of the steps it waits for, so every step is drawn below
each step it waits for, and its WAITS FOR cell names them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from worker_abstraction.types import TaskStatus
from worker_abstraction.workflows import InvalidWorkflowError, StepRecord, Workflow, WorkflowRecord
from worker_abstraction.workflows.model import Step, order
from worker_abstraction.workflows.records import CANCELED, COMPLETED, FAILED, RUNNING, SKIPPED, WAITING

_STEP_STYLES = {
    WAITING: "dim",
    RUNNING: "cyan",
    COMPLETED: "green",
    FAILED: "bold red",
    CANCELED: "magenta",
    SKIPPED: "yellow",
}
_RUN_STYLES = {
    TaskStatus.PENDING: "dim",
    TaskStatus.RUNNING: "cyan",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "bold red",
    TaskStatus.CANCELED: "magenta",
}
_PLAIN_WIDTH = 10_000  # wide enough that plain text never wraps a cell
_RESULT_WIDTH = 100  # a RESULT cell (an output or an error) is cut to this many characters
ON_FAILURE = "on failure"  # the STAGE of the on_failure step


def workflow_of(definition: Any) -> Workflow | None:
    """The workflow a run's stored definition describes (None when it cannot be read as one)."""
    try:
        return Workflow.from_dict(definition)
    except InvalidWorkflowError:
        return None


def stages(workflow: Workflow) -> list[list[Step]]:
    """The steps in stages: each step one stage after the latest of the steps it waits for."""
    stage_of: dict[str, int] = {}
    for step in order(workflow):
        stage_of[step.name] = 1 + max((stage_of[parent] for parent in step.parents if parent in stage_of), default=0)
    made: list[list[Step]] = [[] for _ in range(max(stage_of.values(), default=0))]
    for step in workflow.steps:
        if step.name in stage_of:
            made[stage_of[step.name] - 1].append(step)
    return made


def is_map(workflow: Workflow | None, name: str) -> bool:
    step = workflow.get(name) if workflow is not None else None
    return step is not None and step.map is not None


def describe_step(step: StepRecord, *, mapped: bool = False) -> str:
    """One line of `--watch`: the step, its new status, a map's task count once it runs, the error if any."""
    line = f"{step.name} {step.status}"
    if mapped and step.tasks and step.status == RUNNING:
        line += f" ({step.tasks} task{'s' if step.tasks != 1 else ''})"
    if step.error:
        line += f": {_shorten(step.error, 300)}"
    return line


def step_counts(record: WorkflowRecord) -> str:
    """`done/total`: the steps that completed, of all the run's steps."""
    done = sum(1 for step in record.steps.values() if step.status == COMPLETED)
    return f"{done}/{len(record.steps)}"


def render(record: WorkflowRecord, workflow: Workflow | None, *, plain: bool = False) -> RenderableType:
    """A run as one renderable: its facts (status, failed step, error, rerun_of), then its steps by stage.

    Args:
        workflow: the run's definition (None: the steps in the record's order, no stages).
        plain: no borders, aligned as the other commands' text.
    """
    facts = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    facts.add_row("workflow", record.workflow_id)
    facts.add_row("name", record.name or "-")
    facts.add_row("status", Text(record.status.name, style=_RUN_STYLES.get(record.status, "")))
    if record.failed_step:
        facts.add_row("failed step", Text(record.failed_step, style="bold red"))
    if record.error:
        facts.add_row("error", record.error)
    if record.rerun_of:
        facts.add_row("rerun of", record.rerun_of)
    facts.add_row("steps", f"{step_counts(record)} completed")
    return Group(facts, Text(), _steps_table(record, workflow, None if plain else box.SIMPLE_HEAD))


def render_list(records: Iterable[WorkflowRecord], *, plain: bool = False) -> RenderableType:
    """Runs as a table: ID, NAME, STATUS, STEPS (completed/all), FAILED STEP."""
    table = _table(None if plain else box.SIMPLE_HEAD, "ID", "NAME", "STATUS", "STEPS", "FAILED STEP")
    for record in records:
        table.add_row(
            record.workflow_id,
            record.name or "-",
            Text(record.status.name, style=_RUN_STYLES.get(record.status, "")),
            step_counts(record),
            Text(record.failed_step or "-", style="red" if record.failed_step else ""),
        )
    return table


def show(renderable_of: Any, *args: Any, console: Console | None = None) -> None:
    """Print `renderable_of(*args)`: in colour on a terminal, as plain text (no colours, no borders) otherwise."""
    console = console or Console()
    if console.is_terminal:
        console.print(renderable_of(*args))
    else:
        print(as_text(renderable_of(*args, plain=True)), flush=True)


def as_text(renderable: RenderableType) -> str:
    """A renderable as plain text: no colours, no trailing spaces, cells never cut."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=_PLAIN_WIDTH, color_system=None, force_terminal=False, soft_wrap=False)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def _table(frame: box.Box | None, *columns: str) -> Table:
    table = Table(box=frame, pad_edge=frame is not None, padding=(0, 1), header_style="bold", show_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=column != "RESULT")
    return table


def _steps_table(record: WorkflowRecord, workflow: Workflow | None, frame: box.Box | None) -> Table:
    table = _table(frame, "STAGE", "STEP", "STATUS", "TASKS", "WAITS FOR", "RESULT")
    if workflow is None:
        for name, step in record.steps.items():
            table.add_row("-", *_cells(name, step, record, mapped=False, waits_for=()))
        return table
    for number, stage in enumerate(stages(workflow), start=1):
        for index, one in enumerate(stage):
            cells = _cells(one.name, record.steps.get(one.name), record, mapped=one.map is not None,
                           waits_for=one.parents)  # fmt: skip
            table.add_row(str(number) if index == 0 else "", *cells)
    failure = workflow.failure_step
    if failure is not None:
        table.add_row(ON_FAILURE, *_cells(failure.name, record.steps.get(failure.name), record, mapped=False,
                                          waits_for=()))  # fmt: skip
    return table


def _cells(name: str, step: StepRecord | None, record: WorkflowRecord, *, mapped: bool,
           waits_for: Iterable[str]) -> tuple[RenderableType, ...]:  # fmt: skip
    if step is None:  # (an on_failure step that did not run, or a step the record does not name yet)
        status = WAITING if not record.status.is_terminal else "-"
        step = StepRecord(name, "", status)
    label = step.status + (" (kept)" if step.kept else "")
    tasks = "-"
    if mapped:
        tasks = str(step.tasks) if step.tasks else "map"
    return (
        Text(name, style="bold red" if name == record.failed_step else "bold"),
        Text(label, style=_STEP_STYLES.get(step.status, "")),
        tasks,
        ", ".join(waits_for) or "-",
        Text(_result(step), style="red" if step.error else ""),
    )


def _result(step: StepRecord) -> str:
    if step.error:
        return _shorten(step.error)
    if step.status == COMPLETED:
        return _shorten(json.dumps(step.output, ensure_ascii=False, separators=(",", ":"), default=str))
    return ""


def _shorten(text: str, width: int = _RESULT_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def step_to_json(workflow_id: str, step: StepRecord) -> dict[str, Any]:
    """The `--json` form of one step change (a `--watch` line)."""
    made: dict[str, Any] = {"event": "step", "workflow_id": workflow_id, "step": step.name, "status": step.status,
                            "tasks": step.tasks}  # fmt: skip
    if step.error:
        made["error"] = step.error
    return made


def record_to_json(record: WorkflowRecord, **extra: Any) -> dict[str, Any]:
    """The `--json` form of a run: `WorkflowRecord.to_dict()` (after `extra`, e.g. an event)."""
    return {**extra, **record.to_dict()}
