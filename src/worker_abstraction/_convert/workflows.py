"""Workflow runs as the contract carries them: a WorkflowRecord as a WorkflowRun, its steps, its events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from worker_abstraction._convert.tasks import STATUSES
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.types import TaskStatus, TaskUpdate
from worker_abstraction.workflows.records import StepRecord, WorkflowRecord


def step_to_pb(step: StepRecord) -> pb.WorkflowStep:
    message = pb.WorkflowStep(
        name=step.name,
        capability=step.capability,
        status=step.status,
        error=step.error,
        tasks=step.tasks,
        kept=step.kept,
    )
    if step.output is not None:
        message.output_json = json.dumps(step.output, ensure_ascii=False)
    return message


def step_from_pb(message: pb.WorkflowStep) -> StepRecord:
    return StepRecord(
        message.name,
        message.capability,
        message.status,
        _json(message.output_json),
        message.error,
        message.tasks,
        message.kept,
    )


def run_to_pb(record: WorkflowRecord, definition: Mapping[str, Any] | None = None) -> pb.WorkflowRun:
    """The run as the contract carries it; with `definition`, that too (GetWorkflow sends it)."""
    message = pb.WorkflowRun(
        workflow_id=record.workflow_id,
        name=record.name,
        status=int(record.status),  # type: ignore[arg-type]  # TaskStatus mirrors the proto enum
        steps=[step_to_pb(step) for step in record.steps.values()],
        failed_step=record.failed_step,
        error=record.error,
        rerun_of=record.rerun_of,
    )
    if definition:
        message.definition_json = json.dumps(definition, ensure_ascii=False)
    return message


def run_from_pb(message: pb.WorkflowRun) -> WorkflowRecord:
    return WorkflowRecord(
        message.workflow_id,
        message.name,
        STATUSES.get(message.status, TaskStatus.UNKNOWN),
        {step.name: step_from_pb(step) for step in message.steps},
        message.failed_step,
        message.error,
        message.rerun_of,
    )


def event_to_pb(update: TaskUpdate, sequence: int, run: WorkflowRecord | None = None) -> pb.WorkflowEvent:
    """One update of the task that holds a run, as an event: the step it names (if any), and on the
    run's end, `run` whole."""
    message = pb.WorkflowEvent(
        sequence=sequence,
        status=int(update.status),  # type: ignore[arg-type]  # TaskStatus mirrors the proto enum
    )
    name = update.metadata.get("step")
    if name is not None:
        step = message.step
        step.name = name
        step.status = update.metadata.get("step_status", "")
        step.error = update.metadata.get("error", "")
        tasks = update.metadata.get("tasks", "0")
        step.tasks = int(tasks) if tasks.isdecimal() and len(tasks) < 10 else 0
    if run is not None:
        message.run.CopyFrom(run_to_pb(run))
    return message


def _json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text
