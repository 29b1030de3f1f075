"""Workflows: DAGs of steps, each a capability call, run durably by the orchestrator (see `model`)."""

from worker_abstraction.workflows.canvas import Signature, chain, chord, group, signature
from worker_abstraction.workflows.model import (
    FAILED_STEP,
    FAILURE_ERROR,
    WORKFLOW_CAPABILITY,
    InvalidWorkflowError,
    Output,
    Step,
    Workflow,
)
from worker_abstraction.workflows.records import StepRecord, WorkflowRecord, step_task_id

__all__ = [
    "FAILED_STEP",
    "FAILURE_ERROR",
    "WORKFLOW_CAPABILITY",
    "InvalidWorkflowError",
    "Output",
    "Signature",
    "Step",
    "StepRecord",
    "Workflow",
    "WorkflowRecord",
    "chain",
    "chord",
    "group",
    "signature",
    "step_task_id",
]
