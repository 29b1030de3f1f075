"""A workflow: a DAG of steps, each a capability call, declared in Python or read from a plain JSON file.

A step's parameters are literals, or references to an earlier step's output (`Output`, the whole output or
a path into it, written `{"$output": "extract", "path": ["chunks", 0]}` in a file). A step runs once every
step it refers to, and every step it lists in `after`, has completed. A map step runs one task per element
of a list (an `Output` too), with the element as one of its parameters, at most `concurrency` at a time,
and its output is the list of their outputs, in order. An `on_failure` step runs once if the workflow
fails, and may be given which step failed and why (`{"$failure": "step"}`, `{"$failure": "error"}`).

`problems()` lists everything wrong with a workflow at once (names, cycles, references to missing steps,
options), and, given the capabilities the live workers declare, unknown capabilities and literal
parameters that break their schemas; the engine refuses a workflow with any (InvalidParametersError).

The file format (`Workflow.from_dict`, `to_dict`; the README shows a whole one):

    {"workflow": "etl", "fail_fast": true, "deadline_seconds": 600,
     "steps": [{"name": "extract", "capability": "extract", "params": {"rows": 1000}},
               {"name": "transform", "capability": "transform",
                "map": {"over": {"$output": "extract", "path": ["chunks"]}, "as": "chunk", "concurrency": 8}},
               {"name": "report", "capability": "report", "params": {"parts": {"$output": "transform"}},
                "retry": {"max_attempts": 5}, "timeout_seconds": 60}],
     "on_failure": {"name": "alert", "capability": "notify",
                    "params": {"step": {"$failure": "step"}, "error": {"$failure": "error"}}}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from worker_abstraction.codec import short
from worker_abstraction.options import RetryPolicy
from worker_abstraction.types import CapabilitySpec
from worker_abstraction.workflows import checks, file_format
from worker_abstraction.workflows.checks import order
from worker_abstraction.workflows.steps import (
    DEFAULT_CONCURRENCY,
    FAILED_STEP,
    FAILURE_ERROR,
    WORKFLOW_CAPABILITY,
    FailureField,
    MapOver,
    Output,
    Step,
    names,
    step_options,
)

__all__ = [
    "FAILED_STEP",
    "FAILURE_ERROR",
    "WORKFLOW_CAPABILITY",
    "FailureField",
    "InvalidWorkflowError",
    "MapOver",
    "Output",
    "Step",
    "Workflow",
    "order",
]


class Workflow:
    """A DAG of steps, built step by step (`step`, `map`, `on_failure`) or read from a file (`from_dict`).

    Args:
        name: what the workflow is called (records and the dashboard show it).
        fail_fast: when a step fails, cancel the running steps and start no other (True), or carry on with
            the branches that do not depend on the failed step (False); the workflow fails either way.
        deadline_seconds: the longest the whole workflow may take (0: no limit); past it, its running
            steps are canceled and it fails.
    """

    def __init__(self, name: str, *, fail_fast: bool = True, deadline_seconds: float = 0) -> None:
        self.name = name
        self.fail_fast = fail_fast
        self.deadline_seconds = deadline_seconds
        self.steps: list[Step] = []
        self.failure_step: Step | None = None

    # ---- building ----------------------------------------------------------------------------------------

    def step(
        self,
        name: str,
        capability: str,
        params: Mapping[str, Any] | None = None,
        *,
        after: Sequence[str | Output] = (),
        retry_policy: RetryPolicy | None = None,
        **options: Any,
    ) -> Output:
        """Add a step; its `Output`, for later steps' parameters (`output["field"]` for a path into it).

        `options` are the step's task options (`STEP_OPTIONS`: timeout_seconds, priority, tags, ...).
        """
        made = Step(name, capability, dict(params or {}), names(after), None, step_options(retry_policy, options))
        self.steps.append(made)
        return Output(name)

    def map(
        self,
        name: str,
        capability: str,
        over: Output,
        *,
        item: str = "item",
        params: Mapping[str, Any] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        after: Sequence[str | Output] = (),
        retry_policy: RetryPolicy | None = None,
        **options: Any,
    ) -> Output:
        """Add a map step: a task of `capability` per element of the list `over`, given as parameter `item`
        (with `params` besides), at most `concurrency` at once. Its output is the list of their outputs."""
        options_made = step_options(retry_policy, options)
        made = Step(name, capability, dict(params or {}), names(after), MapOver(over, item, concurrency), options_made)
        self.steps.append(made)
        return Output(name)

    def on_failure(
        self,
        name: str,
        capability: str,
        params: Mapping[str, Any] | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
        **options: Any,
    ) -> None:
        """The step run once if the workflow fails; `FAILED_STEP` and `FAILURE_ERROR` in its parameters
        are the failed step's name and its error."""
        self.failure_step = Step(name, capability, dict(params or {}), (), None, step_options(retry_policy, options))

    # ---- reading ---------------------------------------------------------------------------------------------

    def get(self, name: str) -> Step | None:
        for step in self.steps:
            if step.name == name:
                return step
        if self.failure_step is not None and self.failure_step.name == name:
            return self.failure_step
        return None

    def descendants(self, name: str) -> set[str]:
        """Every step that waits, directly or not, for step `name`."""
        children: dict[str, list[str]] = {}
        for step in self.steps:
            for parent in step.parents:
                children.setdefault(parent, []).append(step.name)
        found: set[str] = set()
        todo = list(children.get(name, ()))
        while todo:
            one = todo.pop()
            if one not in found:
                found.add(one)
                todo.extend(children.get(one, ()))
        return found

    def problems(self, capabilities: Mapping[str, CapabilitySpec | None] | None = None) -> list[str]:
        """Everything wrong with this workflow (empty: it may run). With `capabilities` (each capability the
        live workers offer, and what they declare of it), also the steps whose capability nobody offers and
        the literal parameters that break a capability's declared parameters."""
        return checks.problems(self, capabilities)

    # ---- the file format -------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        made: dict[str, Any] = {"workflow": self.name, "fail_fast": self.fail_fast}
        if self.deadline_seconds:
            made["deadline_seconds"] = self.deadline_seconds
        made["steps"] = [step.to_dict() for step in self.steps]
        if self.failure_step is not None:
            made["on_failure"] = self.failure_step.to_dict()
        return made

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> Workflow:
        """A workflow from its file format (a dict, as `json.load` gives it).

        Raises:
            InvalidWorkflowError: the data is not a workflow (every problem listed).
        """
        problems: list[str] = []
        made = cls("")
        if not file_format.fill(made, data, problems) or problems:
            raise InvalidWorkflowError(problems or ["a workflow must be a JSON object"])
        return made

    @classmethod
    def from_json(cls, text: str | bytes) -> Workflow:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise InvalidWorkflowError([f"not JSON: {short(str(error))}"]) from None
        return cls.from_dict(data)


class InvalidWorkflowError(ValueError):
    """A workflow that cannot run, with every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:20]) + (
            f"; ... ({len(self.problems) - 20} more)" if len(problems) > 20 else ""
        )
        super().__init__(f"invalid workflow: {shown}")
