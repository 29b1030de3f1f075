"""The workflow file format (JSON, as `json.load` gives it): read into a `Workflow`, every problem noted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from worker_abstraction.codec import short
from worker_abstraction.errors import InvalidTaskOptionsError
from worker_abstraction.options import RetryPolicy, TaskOptions
from worker_abstraction.workflows.checks import MAX_STEPS
from worker_abstraction.workflows.steps import (
    DEFAULT_CONCURRENCY,
    FAILURE_FIELDS,
    STEP_OPTIONS,
    FailureField,
    MapOver,
    Output,
    Step,
    listed,
    step_options,
)

if TYPE_CHECKING:
    from worker_abstraction.workflows.model import Workflow


def from_plain(value: Any, where: str, problems: list[str], depth: int = 0) -> Any:
    """A parameter value read from a file, with its references made `Output`s and `FailureField`s."""
    if depth > 64:
        problems.append(f"{where}: nested more than 64 deep")
        return None
    if isinstance(value, dict):
        if "$output" in value:
            return output_from(value, where, problems)
        if "$failure" in value:
            name = value["$failure"]
            if set(value) != {"$failure"} or name not in FAILURE_FIELDS:
                problems.append(f'{where}: a failure reference is {{"$failure": "step"}} or {{"$failure": "error"}}')
                return None
            return FailureField(name)
        return {key: from_plain(item, f"{where}.{key}"[:200], problems, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [from_plain(item, f"{where}[{i}]"[:200], problems, depth + 1) for i, item in enumerate(value)]
    return value


def output_from(value: Mapping[str, Any], where: str, problems: list[str]) -> Output | None:
    step, path = value.get("$output"), value.get("path", [])
    if set(value) - {"$output", "path"}:
        problems.append(f'{where}: an output reference has "$output" and "path" only')
        return None
    if not isinstance(step, str) or not isinstance(path, list):
        problems.append(f'{where}: "$output" names a step, "path" is a list of keys and indexes')
        return None
    if not all(isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)) for key in path):
        problems.append(f"{where}: a path holds strings (keys) and integers (indexes) only")
        return None
    return Output(step, tuple(path))


def fill(workflow: Workflow, data: Any, problems: list[str]) -> bool:
    """Read `data` into the empty `workflow`; False if it is not a workflow at all (a JSON object)."""
    if not isinstance(data, dict):
        return False
    unknown = set(data) - {"workflow", "fail_fast", "deadline_seconds", "steps", "on_failure"}
    if unknown:
        problems.append(f"unknown workflow fields {listed(unknown)}")
    name = data.get("workflow", "")
    fail_fast, deadline = data.get("fail_fast", True), data.get("deadline_seconds", 0)
    if not isinstance(fail_fast, bool):
        problems.append(f"fail_fast must be true or false, got {short(fail_fast)}")
        fail_fast = True
    workflow.name, workflow.fail_fast = name if isinstance(name, str) else "", fail_fast
    if not isinstance(name, str):
        problems.append(f'"workflow" (its name) must be a string, got {short(name)}')
    if isinstance(deadline, int | float) and not isinstance(deadline, bool):
        workflow.deadline_seconds = deadline
    else:
        problems.append(f"deadline_seconds must be a number, got {short(deadline)}")
    steps = data.get("steps")
    if not isinstance(steps, list):
        problems.append('"steps" must be a list of steps')
        steps = []
    for i, raw in enumerate(steps[: MAX_STEPS + 1]):  # (one more than may be: the check says so)
        step = step_from(raw, f"steps[{i}]", problems)
        if step is not None:
            workflow.steps.append(step)
    if "on_failure" in data:
        workflow.failure_step = step_from(data["on_failure"], "on_failure", problems)
    return True


def step_from(raw: Any, where: str, problems: list[str]) -> Step | None:
    if not isinstance(raw, dict):
        problems.append(f"{where} must be an object")
        return None
    known = {"name", "capability", "params", "after", "map", "retry", *STEP_OPTIONS}
    unknown = set(raw) - known
    if unknown:
        problems.append(f"{where}: unknown fields {listed(unknown)} (a step has {', '.join(sorted(known))})")
    name, capability = raw.get("name"), raw.get("capability")
    where = f"step {short(name)}" if isinstance(name, str) else where
    params = from_plain(raw.get("params", {}), f"{where}.params", problems)
    if not isinstance(params, dict):
        problems.append(f"{where}: params must be an object")
        params = {}
    after = raw.get("after", [])
    if not isinstance(after, list) or not all(isinstance(one, str) for one in after):
        problems.append(f"{where}: after must be a list of step names")
        after = []
    over = None
    if "map" in raw:
        over = map_from(raw["map"], where, problems)
    retry = None
    if "retry" in raw:
        try:
            retry = RetryPolicy(**raw["retry"]) if isinstance(raw["retry"], dict) else None
        except (TypeError, ValueError, InvalidTaskOptionsError) as error:
            problems.append(f"{where}: retry: {str(error)[:200]}")
        if not isinstance(raw["retry"], dict):
            problems.append(f"{where}: retry must be an object (max_attempts, initial_backoff_seconds, ...)")
    try:
        options = step_options(retry, {key: raw[key] for key in STEP_OPTIONS if key in raw})
    except (InvalidTaskOptionsError, TypeError, ValueError) as error:
        problems.append(f"{where}: {str(error)[:300]}")
        options = TaskOptions()
    return Step(
        name if isinstance(name, str) else "",
        capability if isinstance(capability, str) else "",
        params,
        tuple(after),
        over,
        options,
    )


def map_from(raw: Any, where: str, problems: list[str]) -> MapOver | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("over"), dict):
        problems.append(f'{where}: map must be {{"over": {{"$output": ...}}, "as": NAME, "concurrency": N}}')
        return None
    unknown = set(raw) - {"over", "as", "concurrency"}
    if unknown:
        problems.append(f"{where}: map has unknown fields {listed(unknown)}")
    over = output_from(raw["over"], f"{where}.map.over", problems)
    item, concurrency = raw.get("as", "item"), raw.get("concurrency", DEFAULT_CONCURRENCY)
    if over is None:
        return None
    return MapOver(over, item if isinstance(item, str) else "", concurrency)
