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

import dataclasses
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker_abstraction.codec import short
from worker_abstraction.errors import InvalidTaskOptionsError
from worker_abstraction.options import MAX_ID_LENGTH, MAX_TIMEOUT_SECONDS, RetryPolicy, TaskOptions
from worker_abstraction.types import CapabilitySpec

# The capability under which a workflow is stored and run as a task of its own (never sent to a worker).
WORKFLOW_CAPABILITY = "wa.workflow"
MAX_STEPS = 1_000
MAX_CONCURRENCY = 10_000
DEFAULT_CONCURRENCY = 16
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
FAILURE_FIELDS = ("step", "error")
# Options a step may set, as a file names them (a step's task gets its id and key from the workflow).
STEP_OPTIONS = ("timeout_seconds", "priority", "fairness_key", "required_tags", "preferred_tags", "worker_id")


@dataclass(frozen=True, slots=True)
class Output:
    """A reference to a step's output, or to a path into it: `extract.output["chunks"][0]`."""

    step: str
    path: tuple[str | int, ...] = ()

    def __getitem__(self, key: str | int) -> Output:
        return Output(self.step, (*self.path, key))

    def to_dict(self) -> dict[str, Any]:
        return {"$output": self.step, "path": list(self.path)} if self.path else {"$output": self.step}


@dataclass(frozen=True, slots=True)
class FailureField:
    """What an `on_failure` step is given: the name of the step that failed ("step") or its error ("error")."""

    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"$failure": self.name}


FAILED_STEP, FAILURE_ERROR = FailureField("step"), FailureField("error")


@dataclass(frozen=True, slots=True)
class MapOver:
    """A map step's list (`over`), the parameter each element is passed as (`item`), and how many of its
    tasks may run at once."""

    over: Output
    item: str = "item"
    concurrency: int = DEFAULT_CONCURRENCY


@dataclass(frozen=True, slots=True)
class Step:
    """One step: a call of `capability` with `params` (literals, `Output`s, `FailureField`s, nested in
    lists and dicts as you like), after the steps in `after` and those it refers to."""

    name: str
    capability: str
    params: Mapping[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    map: MapOver | None = None
    options: TaskOptions = field(default_factory=TaskOptions)

    @property
    def parents(self) -> tuple[str, ...]:
        """The steps this one waits for: those in `after` and those it refers to, each once, in order."""
        found = dict.fromkeys(self.after)
        for ref in references(self.params):
            if isinstance(ref, Output):
                found.setdefault(ref.step)
        if self.map is not None:
            found.setdefault(self.map.over.step)
        return tuple(found)

    def to_dict(self) -> dict[str, Any]:
        made: dict[str, Any] = {"name": self.name, "capability": self.capability}
        if self.params:
            made["params"] = _to_plain(self.params)
        if self.after:
            made["after"] = list(self.after)
        if self.map is not None:
            over = self.map
            made["map"] = {"over": over.over.to_dict(), "as": over.item, "concurrency": over.concurrency}
        made.update(_options_to_dict(self.options))
        return made


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
        made = Step(name, capability, dict(params or {}), _names(after), None, _step_options(retry_policy, options))
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
        options_made = _step_options(retry_policy, options)
        made = Step(name, capability, dict(params or {}), _names(after), MapOver(over, item, concurrency), options_made)
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
        self.failure_step = Step(name, capability, dict(params or {}), (), None, _step_options(retry_policy, options))

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
        return _problems(self, capabilities)

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
        made = _from_dict(data, problems)
        if made is None or problems:
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


# ---- references -------------------------------------------------------------------------------------------


def references(value: Any) -> Iterator[Output | FailureField]:
    """Every reference in a parameter value, depth first."""
    if isinstance(value, Output | FailureField):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from references(item)


def _to_plain(value: Any) -> Any:
    """A parameter value with its references written as the file writes them."""
    if isinstance(value, Output | FailureField):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {key: _to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(item) for item in value]
    return value


def _from_plain(value: Any, where: str, problems: list[str], depth: int = 0) -> Any:
    """A parameter value read from a file, with its references made `Output`s and `FailureField`s."""
    if depth > 64:
        problems.append(f"{where}: nested more than 64 deep")
        return None
    if isinstance(value, dict):
        if "$output" in value:
            return _output_from(value, where, problems)
        if "$failure" in value:
            name = value["$failure"]
            if set(value) != {"$failure"} or name not in FAILURE_FIELDS:
                problems.append(f'{where}: a failure reference is {{"$failure": "step"}} or {{"$failure": "error"}}')
                return None
            return FailureField(name)
        return {key: _from_plain(item, f"{where}.{key}"[:200], problems, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_plain(item, f"{where}[{i}]"[:200], problems, depth + 1) for i, item in enumerate(value)]
    return value


def _output_from(value: Mapping[str, Any], where: str, problems: list[str]) -> Output | None:
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


# ---- the file format ------------------------------------------------------------------------------------


def _from_dict(data: Any, problems: list[str]) -> Workflow | None:
    if not isinstance(data, dict):
        return None
    unknown = set(data) - {"workflow", "fail_fast", "deadline_seconds", "steps", "on_failure"}
    if unknown:
        problems.append(f"unknown workflow fields {_listed(unknown)}")
    name = data.get("workflow", "")
    fail_fast, deadline = data.get("fail_fast", True), data.get("deadline_seconds", 0)
    if not isinstance(fail_fast, bool):
        problems.append(f"fail_fast must be true or false, got {short(fail_fast)}")
        fail_fast = True
    workflow = Workflow(name if isinstance(name, str) else "", fail_fast=fail_fast, deadline_seconds=0)
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
    for i, raw in enumerate(steps[: MAX_STEPS + 1]):
        step = _step_from(raw, f"steps[{i}]", problems)
        if step is not None:
            workflow.steps.append(step)
    if "on_failure" in data:
        workflow.failure_step = _step_from(data["on_failure"], "on_failure", problems)
    return workflow


def _step_from(raw: Any, where: str, problems: list[str]) -> Step | None:
    if not isinstance(raw, dict):
        problems.append(f"{where} must be an object")
        return None
    known = {"name", "capability", "params", "after", "map", "retry", *STEP_OPTIONS}
    unknown = set(raw) - known
    if unknown:
        problems.append(f"{where}: unknown fields {_listed(unknown)} (a step has {', '.join(sorted(known))})")
    name, capability = raw.get("name"), raw.get("capability")
    where = f"step {short(name)}" if isinstance(name, str) else where
    params = _from_plain(raw.get("params", {}), f"{where}.params", problems)
    if not isinstance(params, dict):
        problems.append(f"{where}: params must be an object")
        params = {}
    after = raw.get("after", [])
    if not isinstance(after, list) or not all(isinstance(one, str) for one in after):
        problems.append(f"{where}: after must be a list of step names")
        after = []
    over = None
    if "map" in raw:
        over = _map_from(raw["map"], where, problems)
    retry = None
    if "retry" in raw:
        try:
            retry = RetryPolicy(**raw["retry"]) if isinstance(raw["retry"], dict) else None
        except (TypeError, ValueError, InvalidTaskOptionsError) as error:
            problems.append(f"{where}: retry: {str(error)[:200]}")
        if not isinstance(raw["retry"], dict):
            problems.append(f"{where}: retry must be an object (max_attempts, initial_backoff_seconds, ...)")
    try:
        options = _step_options(retry, {key: raw[key] for key in STEP_OPTIONS if key in raw})
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


def _map_from(raw: Any, where: str, problems: list[str]) -> MapOver | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("over"), dict):
        problems.append(f'{where}: map must be {{"over": {{"$output": ...}}, "as": NAME, "concurrency": N}}')
        return None
    unknown = set(raw) - {"over", "as", "concurrency"}
    if unknown:
        problems.append(f"{where}: map has unknown fields {_listed(unknown)}")
    over = _output_from(raw["over"], f"{where}.map.over", problems)
    item, concurrency = raw.get("as", "item"), raw.get("concurrency", DEFAULT_CONCURRENCY)
    if over is None:
        return None
    return MapOver(over, item if isinstance(item, str) else "", concurrency)


def _listed(names: set[Any]) -> str:
    shown = sorted(short(name) for name in names)
    return ", ".join(shown[:10]) + (f" ... ({len(shown) - 10} more)" if len(shown) > 10 else "")


def _options_to_dict(options: TaskOptions) -> dict[str, Any]:
    default, made = TaskOptions(), {}
    for name in STEP_OPTIONS:
        value = getattr(options, name)
        if value != getattr(default, name):
            made[name] = list(value) if isinstance(value, tuple) else value
    if options.retry_policy is not None:
        made["retry"] = {
            key: sorted(value) if isinstance(value, tuple | frozenset | set) else value
            for key, value in dataclasses.asdict(options.retry_policy).items()
        }
    return made


def _step_options(retry_policy: RetryPolicy | None, options: Mapping[str, Any]) -> TaskOptions:
    unknown = set(options) - set(STEP_OPTIONS)
    if unknown:
        raise TypeError(f"a step takes the options {', '.join(STEP_OPTIONS)}, not {', '.join(sorted(unknown))}")
    return TaskOptions(retry_policy=retry_policy, **options)


def _names(after: Sequence[str | Output]) -> tuple[str, ...]:
    return tuple(one.step if isinstance(one, Output) else one for one in after)


# ---- the checks -------------------------------------------------------------------------------------------


def _problems(workflow: Workflow, capabilities: Mapping[str, CapabilitySpec | None] | None) -> list[str]:
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
        json.dumps(_to_plain(step.params))
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
