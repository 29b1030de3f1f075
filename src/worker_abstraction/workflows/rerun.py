"""A rerun of an ended workflow run: the arguments of the new run that starts again from one step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker_abstraction.errors import InvalidParametersError
from worker_abstraction.workflows.model import Workflow
from worker_abstraction.workflows.records import COMPLETED, WorkflowRecord


def rerun_params(
    definition: Mapping[str, Any], record: WorkflowRecord, step: str, *, downstream: bool
) -> dict[str, Any]:
    """The arguments of a run of `definition` that reruns `record` from `step`: that step runs again, and
    with `downstream` every step that waits for it too; the other steps that completed keep their outputs.

    Raises:
        InvalidParametersError: the run has not ended, or the workflow has no such step.
    """
    if not record.status.is_terminal:
        raise InvalidParametersError([f"workflow {record.workflow_id} is {record.status.name}: rerun one that ended"])
    made = Workflow.from_dict(definition)
    failure = made.failure_step
    if made.get(step) is None or (failure is not None and failure.name == step):
        names = ", ".join(s.name for s in made.steps[:30])
        raise InvalidParametersError([f"workflow {record.workflow_id} has no step {step[:64]!r} (its steps: {names})"])
    again = {step} | (made.descendants(step) if downstream else set())
    kept = {
        name: one.output
        for name, one in record.steps.items()
        if one.status == COMPLETED and name not in again and (failure is None or name != failure.name)
    }
    return {"workflow": dict(definition), "kept": kept, "rerun_of": record.workflow_id}
