"""Workflow runs as JSON-ready dicts for the dashboard: a row of the list, and one run with its graph.

The graph comes from the run's definition (`Workflow.from_dict` of its task's `workflow` argument): each step
is a node, placed in a layer one past the deepest of its parents (the steps in its `after` and those its
references name, `Step.parents`), and each parent gives an edge. Steps are taken in run order, so a graph
cut at `MAX_STEPS_SHOWN` keeps every shown step's parents. The `on_failure` step stands in a layer of its
own after the others, with no edges (it runs after whichever step failed).

What users wrote (ids, names, errors, outputs) is cut to a bounded length here; the page escapes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker_abstraction.dashboard.views import JSON, seconds, text
from worker_abstraction.types import TaskRecord
from worker_abstraction.workflows.model import InvalidWorkflowError, MapOver, Workflow, order
from worker_abstraction.workflows.records import STEP_STATUSES, WorkflowRecord, step_task_id

MAX_STEPS_SHOWN = 300  # of one workflow's steps shown (in run order); a workflow may have 1,000
MAX_TASK_LINKS = 20  # of a map step's element tasks linked by id (the task list, filtered by prefix, has all)
OUTPUT_PREVIEW = 500  # characters of a step's output shown
ERROR_PREVIEW = 500  # characters of a step's (or the run's) error shown
ROW_ERROR = 300  # characters of a run's error in the list
NOT_RUN = ""  # the status shown for an on_failure step that has not run


@dataclass(frozen=True, slots=True)
class Node:
    """One step as the graph places it."""

    name: str
    capability: str
    layer: int
    parents: tuple[str, ...] = ()
    map: MapOver | None = None
    on_failure: bool = False


@dataclass(frozen=True, slots=True)
class Graph:
    """The steps shown (in run order, each after its parents), the edges between them, and how many steps
    the definition has in all."""

    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]
    total: int
    fail_fast: bool = True
    deadline_seconds: float = 0


def graph(definition: Any, record: WorkflowRecord, limit: int = MAX_STEPS_SHOWN) -> Graph:
    """The graph of a run, from its definition; from its record's steps alone (no edges) when the definition
    cannot be read."""
    try:
        workflow = Workflow.from_dict(definition)
    except (InvalidWorkflowError, TypeError, ValueError, AttributeError):
        names = list(record.steps)
        return Graph(tuple(Node(name, record.steps[name].capability, 0) for name in names[:limit]), (), len(names))
    ordered = order(workflow)
    placed = {step.name for step in ordered}
    ordered += [step for step in workflow.steps if step.name not in placed]  # (a cycle: never admitted)
    total = len(ordered) + (workflow.failure_step is not None)
    layers: dict[str, int] = {}
    nodes: list[Node] = []
    for step in ordered[:limit]:
        parents = tuple(parent for parent in step.parents if parent in layers)
        layers[step.name] = 1 + max((layers[parent] for parent in parents), default=-1)
        nodes.append(Node(step.name, step.capability, layers[step.name], parents, step.map))
    failure = workflow.failure_step
    if failure is not None and len(nodes) < limit:
        nodes.append(Node(failure.name, failure.capability, 1 + max(layers.values(), default=-1), on_failure=True))
    edges = tuple((parent, node.name) for node in nodes for parent in node.parents)
    return Graph(tuple(nodes), edges, total, workflow.fail_fast, workflow.deadline_seconds)


def preview(value: Any) -> str:
    """An output as compact JSON, cut to `OUTPUT_PREVIEW` characters: shown, never parsed back."""
    try:
        made = json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        made = repr(value)
    return text(made, OUTPUT_PREVIEW)


def kept_outputs(task: TaskRecord) -> Mapping[str, Any]:
    """The outputs a rerun kept from the run it reruns (its task's `kept` argument), by step."""
    kept = task.params.get("kept") if isinstance(task.params, Mapping) else None
    return kept if isinstance(kept, Mapping) else {}


def rerun_of(task: TaskRecord, record: WorkflowRecord) -> str:
    """The run this one reruns: in the record once it ended, in its task's arguments before that."""
    found = record.rerun_of or (task.params.get("rerun_of") if isinstance(task.params, Mapping) else "")
    return found if isinstance(found, str) else ""


def step_task_ids(workflow_id: str, node: Node, tasks: int) -> list[str]:
    """The ids of a step's tasks that the page links (a map's first `MAX_TASK_LINKS`)."""
    if node.map is None:
        return [step_task_id(workflow_id, node.name)] if tasks else []
    return [step_task_id(workflow_id, node.name, i) for i in range(min(tasks, MAX_TASK_LINKS))]


def workflow_view(
    task: TaskRecord, record: WorkflowRecord, shape: Graph, outputs: Mapping[str, str], may: Mapping[str, bool]
) -> JSON:
    """One run: its facts, every step shown (status, tasks, error, output preview, layer, parents) and the
    edges between them. `outputs`: the completed steps' output previews, by step."""
    kept = kept_outputs(task)
    steps = []
    for node in shape.nodes:
        step = record.steps.get(node.name)
        status = step.status if step is not None else (NOT_RUN if node.on_failure else STEP_STATUSES[0])
        tasks = step.tasks if step is not None else 0
        steps.append(
            {
                "name": node.name,
                "capability": node.capability,
                "status": status,
                "tasks": tasks,
                "error": text(step.error, ERROR_PREVIEW) if step is not None else "",
                "output": outputs.get(node.name),
                "kept": node.name in kept and status == "COMPLETED",
                "layer": node.layer,
                "parents": list(node.parents),
                "map": None
                if node.map is None
                else {"over": node.map.over.step, "item": node.map.item, "concurrency": node.map.concurrency},
                "on_failure": node.on_failure,
                "task_ids": step_task_ids(record.workflow_id, node, tasks),
                "task_prefix": step_task_id(record.workflow_id, node.name) + ("." if node.map is not None else ""),
            }
        )
    last = task.last_update
    return {
        "workflow_id": record.workflow_id,
        "name": text(record.name, 200),
        "status": record.status.name,
        "submitted_at": seconds(task.submitted_at),
        "updated_at": last.timestamp_ns / 1e9 if last is not None and last.timestamp_ns else None,
        "progress": last.progress if last is not None and not record.status.is_terminal else 1.0,
        "failed_step": record.failed_step,
        "error": text(record.error, ERROR_PREVIEW),
        "rerun_of": rerun_of(task, record),
        "cancel_reason": text(task.cancel_reason, ERROR_PREVIEW),
        "fail_fast": shape.fail_fast,
        "deadline_seconds": shape.deadline_seconds,
        "steps": steps,
        "edges": [{"from": parent, "to": child} for parent, child in shape.edges],
        "layers": 1 + max((node.layer for node in shape.nodes), default=-1),
        "steps_total": shape.total,
        "steps_shown": len(shape.nodes),
        "may": dict(may),
    }


def workflow_row(task: TaskRecord, record: WorkflowRecord) -> JSON:
    """A run as one row of the list: its status, and how many of its steps stand in each status."""
    counts: dict[str, int] = {}
    for step in record.steps.values():
        counts[step.status] = counts.get(step.status, 0) + 1
    last = task.last_update
    return {
        "workflow_id": record.workflow_id,
        "name": text(record.name, 200),
        "status": record.status.name,
        "submitted_at": seconds(task.submitted_at),
        "updated_at": last.timestamp_ns / 1e9 if last is not None and last.timestamp_ns else None,
        "steps_total": len(record.steps),
        "counts": counts,
        "failed_step": record.failed_step,
        "error": text(record.error, ROW_ERROR),
        "rerun_of": rerun_of(task, record),
    }
