"""Where a workflow stands: its steps' statuses, outputs and errors, read from its task's updates."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker_abstraction.types import TaskRecord, TaskStatus, TaskUpdate

# A step's statuses.
WAITING, RUNNING, COMPLETED, FAILED, CANCELED, SKIPPED = (
    "WAITING",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "SKIPPED",
)
STEP_STATUSES = (WAITING, RUNNING, COMPLETED, FAILED, CANCELED, SKIPPED)


def step_task_id(workflow_id: str, step: str, element: int | None = None) -> str:
    """The id of a step's task (of a map step's `element`-th): fixed, so that it is submitted once."""
    return f"{workflow_id}.{step}" if element is None else f"{workflow_id}.{step}.{element}"


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step: its status, its output once it completed, its error if it did not, and its tasks (1, or a
    map's element count; their ids are `step_task_id(workflow_id, name[, i])`). `kept`: its output was
    carried over from the run this one reruns, and it did not run again."""

    name: str
    capability: str
    status: str = WAITING
    output: Any = None
    error: str = ""
    tasks: int = 0
    kept: bool = False

    def to_dict(self) -> dict[str, Any]:
        made: dict[str, Any] = {"capability": self.capability, "status": self.status, "tasks": self.tasks}
        if self.status == COMPLETED:
            made["output"] = self.output
        if self.error:
            made["error"] = self.error
        if self.kept:
            made["kept"] = True
        return made


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    """A workflow run: its status (a task's: RUNNING while it goes, then COMPLETED, FAILED or CANCELED),
    every step's record, the step that failed and why, and the run it reruns (if any)."""

    workflow_id: str
    name: str
    status: TaskStatus
    steps: Mapping[str, StepRecord] = field(default_factory=dict)
    failed_step: str = ""
    error: str = ""
    rerun_of: str = ""

    @property
    def outputs(self) -> dict[str, Any]:
        """The completed steps' outputs, by step."""
        return {name: step.output for name, step in self.steps.items() if step.status == COMPLETED}

    def to_dict(self) -> dict[str, Any]:
        made: dict[str, Any] = {
            "workflow_id": self.workflow_id,
            "workflow": self.name,
            "status": self.status.name,
            "steps": {name: step.to_dict() for name, step in self.steps.items()},
        }
        if self.failed_step or self.error:
            made |= {"failed_step": self.failed_step, "error": self.error}
        if self.rerun_of:
            made["rerun_of"] = self.rerun_of
        return made


def workflow_record(workflow_id: str, definition: Mapping[str, Any], updates: Sequence[TaskUpdate],
                    status: TaskStatus, arguments: Mapping[str, Any] | None = None) -> WorkflowRecord:  # fmt: skip
    """A workflow's record from its task's updates (the terminal one holds it whole; before that, each
    update names a step and its new status) and, for a rerun, its task's `arguments` (what it reruns, and
    the outputs it kept)."""
    final = updates[-1] if updates and updates[-1].is_terminal else None
    if final is not None and final.output_json:
        try:
            return _from_dict(json.loads(final.output_json), workflow_id, final.status, final.error_message)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    steps = {
        str(raw.get("name", "")): StepRecord(str(raw.get("name", "")), str(raw.get("capability", "")))
        for raw in definition.get("steps", []) or []
        if isinstance(raw, Mapping)
    }
    arguments = arguments or {}
    kept = arguments.get("kept")
    kept = kept if isinstance(kept, Mapping) else {}
    for name, output in kept.items():
        if name in steps:
            steps[name] = StepRecord(name, steps[name].capability, COMPLETED, output, "", 0, kept=True)
    for update in updates:
        name = update.metadata.get("step")
        if name is None or update.metadata.get("step_status") is None:
            continue
        step = steps.get(name) or StepRecord(name, "")
        status_now = update.metadata.get("step_status", step.status)
        still_kept = step.kept and status_now == COMPLETED
        steps[name] = StepRecord(
            name,
            step.capability,
            status_now,
            step.output if still_kept else None,
            update.metadata.get("error", ""),
            int(update.metadata.get("tasks", step.tasks) or 0),
            still_kept,
        )
    failed = next((s for s in steps.values() if s.status == FAILED), None)
    rerun_of = arguments.get("rerun_of")
    return WorkflowRecord(
        workflow_id,
        str(definition.get("workflow", "")),
        status if final is None else final.status,
        steps,
        failed.name if failed is not None else "",
        (final.error_message if final is not None else "") or (failed.error if failed is not None else ""),
        rerun_of if isinstance(rerun_of, str) else "",
    )


def _from_dict(data: Mapping[str, Any], workflow_id: str, status: TaskStatus, error: str) -> WorkflowRecord:
    steps = {
        name: StepRecord(
            name,
            str(raw.get("capability", "")),
            str(raw.get("status", WAITING)),
            raw.get("output"),
            str(raw.get("error", "")),
            int(raw.get("tasks", 0)),
            bool(raw.get("kept", False)),
        )
        for name, raw in data["steps"].items()
    }
    return WorkflowRecord(
        workflow_id,
        str(data.get("workflow", "")),
        status,
        steps,
        str(data.get("failed_step", "")),
        str(data.get("error", "")) or error,
        str(data.get("rerun_of", "")),
    )


def definition_of(params: Any) -> Mapping[str, Any]:
    """The workflow definition in the arguments of the task that holds a run (empty if there is none)."""
    definition = params.get("workflow") if isinstance(params, Mapping) else None
    return definition if isinstance(definition, Mapping) else {}


def listed_record(task: TaskRecord) -> WorkflowRecord:
    """A run's record as far as its task's record tells (its latest update: the whole run once it ended)."""
    updates = [task.last_update] if task.last_update is not None else []
    return workflow_record(task.task_id, definition_of(task.params), updates, task.status, task.params)


def step_capabilities(definition: Mapping[str, Any]) -> set[str]:
    """The capabilities a definition's steps (its on-failure step too) call, as far as it names them."""
    steps = definition.get("steps")
    found = [raw for raw in steps if isinstance(raw, Mapping)] if isinstance(steps, list) else []
    failure = definition.get("on_failure")
    if isinstance(failure, Mapping):
        found.append(failure)
    return {raw["capability"] for raw in found if isinstance(raw.get("capability"), str)}
