"""A workflow's steps, and the references their parameters hold to other steps' outputs (see `model`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker_abstraction.codec import short
from worker_abstraction.options import RetryPolicy, TaskOptions

# The capability under which a workflow is stored and run as a task of its own (never sent to a worker).
WORKFLOW_CAPABILITY = "wa.workflow"
DEFAULT_CONCURRENCY = 16
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
            made["params"] = to_plain(self.params)
        if self.after:
            made["after"] = list(self.after)
        if self.map is not None:
            over = self.map
            made["map"] = {"over": over.over.to_dict(), "as": over.item, "concurrency": over.concurrency}
        made.update(options_to_dict(self.options))
        return made


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


def to_plain(value: Any) -> Any:
    """A parameter value with its references written as the file writes them."""
    if isinstance(value, Output | FailureField):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    return value


def listed(names: set[Any]) -> str:
    shown = sorted(short(name) for name in names)
    return ", ".join(shown[:10]) + (f" ... ({len(shown) - 10} more)" if len(shown) > 10 else "")


def options_to_dict(options: TaskOptions) -> dict[str, Any]:
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


def step_options(retry_policy: RetryPolicy | None, options: Mapping[str, Any]) -> TaskOptions:
    unknown = set(options) - set(STEP_OPTIONS)
    if unknown:
        raise TypeError(f"a step takes the options {', '.join(STEP_OPTIONS)}, not {', '.join(sorted(unknown))}")
    return TaskOptions(retry_policy=retry_policy, **options)


def names(after: Sequence[str | Output]) -> tuple[str, ...]:
    return tuple(one.step if isinstance(one, Output) else one for one in after)
