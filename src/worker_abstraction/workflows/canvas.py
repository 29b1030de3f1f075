"""Celery's canvas on the DAG: `chain`, `group` and `chord` of `signature`s, made into a `Workflow`.

    signature("fetch", {"url": u})                   # one call
    chain(sig_a, sig_b, sig_c)                       # one after the other; each gets the previous output
    group(sig_a, sig_b)                              # side by side; their outputs as a list, in order
    chord(group(sig_a, sig_b), sig_sum)              # the body once every one of the header completed

A signature's `takes` names the parameter the previous output is passed as (Celery passes it as the first
argument); without it the step only waits for the previous one. Nest them as Celery does: a chain of groups,
a group of chains. `.workflow(name)` (or `as_workflow`) makes the `Workflow`; its steps are named after
their capabilities (`fetch-1`, `fetch-2`, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker_abstraction.options import RetryPolicy
from worker_abstraction.workflows.model import Output, Workflow

Produced = Output | list[Any] | None  # what a canvas element leaves for the next: one output, a list, nothing


class Canvas:
    """A chain, group, chord or signature."""

    def add(self, workflow: Workflow, names: _Names, after: list[str], given: Produced) -> tuple[Produced, list[str]]:
        """Add this element's steps after `after`, given the previous element's output `given`; what it
        produces, and the steps the next element waits for."""
        raise NotImplementedError

    def workflow(self, name: str = "canvas", *, fail_fast: bool = True, deadline_seconds: float = 0) -> Workflow:
        """The workflow this canvas makes."""
        made = Workflow(name, fail_fast=fail_fast, deadline_seconds=deadline_seconds)
        self.add(made, _Names(), [], None)
        return made


@dataclass(frozen=True)
class Signature(Canvas):
    """A call of `capability` with `params`; `takes`: the parameter the previous output is passed as."""

    capability: str
    params: Mapping[str, Any] = field(default_factory=dict)
    takes: str | None = None
    name: str = ""
    retry_policy: RetryPolicy | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def add(self, workflow: Workflow, names: _Names, after: list[str], given: Produced) -> tuple[Produced, list[str]]:
        params = dict(self.params)
        if self.takes is not None and given is not None:
            params[self.takes] = given
        name = self.name or names.next(self.capability)
        output = workflow.step(name, self.capability, params, after=after, retry_policy=self.retry_policy,
                               **self.options)  # fmt: skip
        return output, [name]


@dataclass(frozen=True)
class Chain(Canvas):
    parts: tuple[Canvas, ...]

    def add(self, workflow: Workflow, names: _Names, after: list[str], given: Produced) -> tuple[Produced, list[str]]:
        for part in self.parts:
            given, after = part.add(workflow, names, after, given)
        return given, after


@dataclass(frozen=True)
class Group(Canvas):
    parts: tuple[Canvas, ...]

    def add(self, workflow: Workflow, names: _Names, after: list[str], given: Produced) -> tuple[Produced, list[str]]:
        outputs: list[Any] = []
        ends: list[str] = []
        for part in self.parts:
            output, last = part.add(workflow, names, list(after), given)
            outputs.append(output)
            ends += last
        return outputs, ends


@dataclass(frozen=True)
class Chord(Canvas):
    header: Group
    body: Canvas

    def add(self, workflow: Workflow, names: _Names, after: list[str], given: Produced) -> tuple[Produced, list[str]]:
        outputs, ends = self.header.add(workflow, names, after, given)
        return self.body.add(workflow, names, ends, outputs)


def signature(
    capability: str,
    params: Mapping[str, Any] | None = None,
    *,
    takes: str | None = None,
    name: str = "",
    retry_policy: RetryPolicy | None = None,
    **options: Any,
) -> Signature:
    """A step to be: `capability` called with `params` (see the module docstring for `takes`)."""
    return Signature(capability, dict(params or {}), takes, name, retry_policy, options)


def chain(*parts: Canvas) -> Chain:
    """The parts one after the other, each given the previous one's output (through its `takes`)."""
    return Chain(parts)


def group(*parts: Canvas) -> Group:
    """The parts side by side; what follows gets their outputs as a list, in order."""
    return Group(parts)


def chord(header: Group | tuple[Canvas, ...] | list[Canvas], body: Canvas) -> Chord:
    """`body` once every part of `header` completed, given their outputs as a list (a failed part fails
    the workflow: the body never runs, and the workflow's record names the part and its error)."""
    return Chord(header if isinstance(header, Group) else Group(tuple(header)), body)


class _Names:
    """Step names made from capabilities: `fetch-1`, `fetch-2`, ..."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def next(self, capability: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_-]", "_", capability)[:50] or "step"
        count = self._counts.get(base, 0) + 1
        self._counts[base] = count
        return f"{base}-{count}"
