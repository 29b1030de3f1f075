"""Everything wrong with a workflow, listed at once; and its steps in an order they can run in."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from worker_abstraction.codec import short
from worker_abstraction.options import MAX_ID_LENGTH, MAX_TIMEOUT_SECONDS
from worker_abstraction.types import CapabilitySpec
from worker_abstraction.workflows.steps import WORKFLOW_CAPABILITY, FailureField, Output, Step, references, to_plain

if TYPE_CHECKING:
    from worker_abstraction.workflows.model import Workflow

MAX_STEPS = 1_000
MAX_CONCURRENCY = 10_000
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def problems(workflow: Workflow, capabilities: Mapping[str, CapabilitySpec | None] | None) -> list[str]:
    problems: list[str] = []
    if not isinstance(workflow.name, str) or len(workflow.name) > MAX_ID_LENGTH:
        problems.append(f"the workflow's name must be a string of at most {MAX_ID_LENGTH} characters")
    deadline = workflow.deadline_seconds
    if not isinstance(deadline, int | float) or not (0 <= deadline <= MAX_TIMEOUT_SECONDS) or math.isnan(deadline):
        problems.append(f"deadline_seconds must be 0 (none) to {MAX_TIMEOUT_SECONDS:g}, got {short(deadline)}")
    steps = workflow.steps
    if not steps:
        problems.append("a workflow has at least one step")
    if len(steps) > MAX_STEPS:
        problems.append(f"a workflow has at most {MAX_STEPS} steps, got {len(steps)}")
        steps = steps[:MAX_STEPS]
    every = [*steps, *([workflow.failure_step] if workflow.failure_step is not None else [])]
    names: set[str] = set()
    for step in every:
        if not _NAME.fullmatch(step.name):
            problems.append(f"step name {short(step.name)} must be 1..64 letters, digits, '_' or '-'")
        elif step.name in names:
            problems.append(f"two steps are named {step.name!r}")
        names.add(step.name)
    known = {step.name for step in steps}
    for step in every:
        problems += _step_problems(step, known, failure=step is workflow.failure_step)
        problems += _capability_problems(step, capabilities)
    if not problems:
        cycle = _cycle(steps)
        if cycle:
            problems.append(f"the steps wait for one another in a cycle: {' waits for '.join(cycle)}")
    return problems


def _step_problems(step: Step, known: set[str], *, failure: bool) -> list[str]:
    problems, where = [], f"step {step.name!r}"
    if not isinstance(step.capability, str) or not step.capability or len(step.capability) > MAX_ID_LENGTH:
        problems.append(f"{where}: capability must be a name of 1..{MAX_ID_LENGTH} characters")
    elif step.capability == WORKFLOW_CAPABILITY:
        problems.append(f"{where}: {WORKFLOW_CAPABILITY!r} runs workflows, not steps")
    for name in step.after:
        if name not in known:
            problems.append(f"{where}: after names a step that does not exist: {short(name)}")
    for ref in references(step.params):
        if isinstance(ref, FailureField) and not failure:
            problems.append(f"{where}: only the on_failure step may refer to the failure ({ref.name!r})")
        if isinstance(ref, Output) and ref.step not in known:
            problems.append(f"{where}: refers to the output of a step that does not exist: {short(ref.step)}")
        if isinstance(ref, Output) and ref.step == step.name:
            problems.append(f"{where}: refers to its own output")
    if step.map is not None:
        over = step.map
        if over.over.step not in known:
            problems.append(f"{where}: maps over the output of a step that does not exist: {short(over.over.step)}")
        if not isinstance(over.item, str) or not over.item or len(over.item) > MAX_ID_LENGTH:
            problems.append(f"{where}: map's item parameter must be a name")
        elif over.item in step.params:
            problems.append(f"{where}: map's item parameter {over.item!r} is also one of its params")
        if not isinstance(over.concurrency, int) or isinstance(over.concurrency, bool):
            problems.append(f"{where}: map's concurrency must be an integer")
        elif not 1 <= over.concurrency <= MAX_CONCURRENCY:
            problems.append(f"{where}: map's concurrency must be 1..{MAX_CONCURRENCY}, got {over.concurrency}")
    if failure and step.map is not None:
        problems.append(f"{where}: the on_failure step cannot be a map")
    if failure and step.after:
        problems.append(f"{where}: the on_failure step runs after the failure, not after other steps")
    try:
        json.dumps(to_plain(step.params))
    except (TypeError, ValueError):
        problems.append(f"{where}: params must hold JSON values only")
    problems += [f"{where}: {problem}" for problem in step.options.problems()]
    return problems


def _capability_problems(step: Step, capabilities: Mapping[str, CapabilitySpec | None] | None) -> list[str]:
    if capabilities is None or not isinstance(step.capability, str):
        return []
    # (Here, not at the top: a daemon's client reads workflows too, and must not load jsonschema for it.)
    from worker_abstraction.validation import parameter_problems

    if step.capability not in capabilities:
        return [f"step {step.name!r}: no live worker offers capability {short(step.capability)}"]
    declared = capabilities[step.capability]
    if declared is None:
        return []
    # Parameters given by a reference (or a map's element) are known at run time: only their names are
    # checked now; the literal ones are checked in full.
    given_later = {key for key, value in step.params.items() if any(True for _ in references(value))}
    if step.map is not None:
        given_later.add(step.map.item)
    literal = {key: value for key, value in step.params.items() if key not in given_later}
    names = {parameter.name for parameter in declared.parameters}
    problems = [
        f"step {step.name!r}: unknown parameter {short(key)} (capability {declared.name!r} takes: "
        f"{', '.join(sorted(names)) or 'no parameters'})"
        for key in sorted(given_later - names)
    ]
    now = dataclasses.replace(declared, parameters=tuple(p for p in declared.parameters if p.name not in given_later))
    return problems + [f"step {step.name!r}: {problem}" for problem in parameter_problems(now, literal)]


def _cycle(steps: Sequence[Step]) -> list[str]:
    """A cycle among the steps (its names, the first repeated at the end), or [] when there is none."""
    parents = {step.name: step.parents for step in steps}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for start in parents:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(parents[start]))]
        state[start] = 1
        path.append(start)
        while stack:
            name, pending = stack[-1]
            nxt = next(pending, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[name] = 2
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt) and nxt in parents:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(parents[nxt])))
    return []


def order(workflow: Workflow) -> list[Step]:
    """The steps, each after its parents (for a workflow without problems)."""
    placed: set[str] = set()
    ordered: list[Step] = []
    pending = list(workflow.steps)
    while pending:
        ready = [step for step in pending if all(parent in placed for parent in step.parents)]
        if not ready:
            break
        for step in ready:
            placed.add(step.name)
            ordered.append(step)
        pending = [step for step in pending if step.name not in placed]
    return ordered
