"""The workflows of the workflow chaos test (`test_workflow_chaos`), and what each must end as.

Five kinds, in turn, each of 10 to 12 steps with a map step bounded in concurrency: a chain (the canvas's, then
a map and more steps), a chord (fan-out/fan-in), a DAG with joins, and two that fail on purpose in their step
`boom` with an `on_failure` step `alert`: one fail-fast (its side branch is canceled or completes, whichever
comes first), one with `fail_fast=False` (its independent branch, with the map, completes). Every step runs a
`_workflow_chaos_workers` capability, a pure function (`compute`); a `Plan` works out each step's right output
from the workflow's file format, step by step, without the engine.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _workflow_chaos_workers import PlannedFailureError, compute

from worker_abstraction.workflows import (
    FAILED_STEP,
    FAILURE_ERROR,
    Output,
    Workflow,
    chain,
    chord,
    group,
    signature,
)

FAILING, ALERT = "boom", "alert"  # the step that fails on purpose, and the on_failure step


class Params:
    """A step's parameters, with its duration (seeded, within `millis`) and the ledger."""

    def __init__(self, rng: random.Random, millis: tuple[int, int], ledger: Path) -> None:
        self.rng, self.millis, self.ledger = rng, millis, str(ledger)

    def __call__(self, **params: Any) -> dict[str, Any]:
        return {**params, "millis": self.rng.randint(*self.millis), "ledger": self.ledger}


def _chain(i: int, p: Params) -> Workflow:
    steps = [signature("add", p(amount=k), takes="value", name=f"add-{k}") for k in range(1, 5)]
    canvas = chain(signature("seed", p(n=i), name="seed"), *steps,
                   signature("spread", p(count=6), takes="value", name="spread"))  # fmt: skip
    flow = canvas.workflow(f"chain-{i}")
    squares = flow.map("squares", "square", over=Output("spread"), item="value", concurrency=2, params=p())
    total = flow.step("total", "total", p(values=squares))
    flow.step("add-6", "add", p(value=flow.step("add-5", "add", p(value=total, amount=5)), amount=6))
    return flow


def _chord(i: int, p: Params) -> Workflow:
    branches = [
        chain(
            signature("seed", p(n=i + k), name=f"seed-{k}"),
            signature("add", p(amount=k), takes="value", name=f"add-{k}"),
        )
        for k in range(4)
    ]
    flow = chord(group(*branches), signature("total", p(), takes="values", name="join")).workflow(f"chord-{i}")
    spread = flow.step("spread", "spread", p(value=Output("join"), count=5))
    squares = flow.map("squares", "square", over=spread, item="value", concurrency=3, params=p())
    flow.step("sum", "total", p(values=squares))
    return flow


def _dag(i: int, p: Params) -> Workflow:
    flow = Workflow(f"dag-{i}")
    seed = flow.step("seed", "seed", p(n=i))
    a, b, c = (flow.step(f"add-{k}", "add", p(value=seed, amount=k)) for k in (1, 2, 3))
    ab, bc = flow.step("join-ab", "total", p(values=[a, b])), flow.step("join-bc", "total", p(values=[b, c]))
    spread = flow.step("spread", "spread", p(value=ab, count=5))
    squares = flow.map("squares", "square", over=spread, item="value", concurrency=2, params=p())
    summed = flow.step("sum", "total", p(values=squares))
    check = flow.step("check", "add", p(value=bc, amount=0), after=["squares"])
    flow.step("final", "total", p(values=[summed, check]))
    return flow


def _fail_fast(i: int, p: Params) -> Workflow:
    """Fails in `boom` after its map; its side branch, going at the same time, is canceled or completes,
    whichever comes first."""
    flow = Workflow(f"fail-fast-{i}", fail_fast=True)
    seed = flow.step("seed", "seed", p(n=i))
    spread = flow.step("spread", "spread", p(value=flow.step("add-1", "add", p(value=seed, amount=1)), count=4))
    squares = flow.map("squares", "square", over=spread, item="value", concurrency=2, params=p())
    boom = flow.step(FAILING, "fail", p(value=flow.step("sum", "total", p(values=squares))))
    flow.step("after-2", "add", p(value=flow.step("after-1", "add", p(value=boom, amount=1)), amount=2))
    side = flow.step("side-1", "add", p(value=seed, amount=1), after=["spread"])  # (beside the map, the failure)
    for k in range(2, 4):
        side = flow.step(f"side-{k}", "add", p(value=side, amount=k))
    flow.on_failure(ALERT, "notify", p(step=FAILED_STEP, error=FAILURE_ERROR))
    return flow


def _carry_on(i: int, p: Params) -> Workflow:
    """Fails in `boom` early (fail_fast=False): its other branch, with the map, completes."""
    flow = Workflow(f"carry-on-{i}", fail_fast=False)
    seed = flow.step("seed", "seed", p(n=i))
    after = flow.step("after-boom", "add", p(value=flow.step(FAILING, "fail", p(value=seed)), amount=1))
    spread = flow.step("spread", "spread", p(value=flow.step("add-1", "add", p(value=seed, amount=1)), count=5))
    squares = flow.map("squares", "square", over=spread, item="value", concurrency=2, params=p())
    added = flow.step("add-2", "add", p(value=flow.step("sum", "total", p(values=squares)), amount=2))
    flow.step("join", "total", p(values=[flow.step("add-3", "add", p(value=added, amount=3)), after]))
    flow.on_failure(ALERT, "notify", p(step=FAILED_STEP, error=FAILURE_ERROR))
    return flow


KINDS: dict[str, Callable[[int, Params], Workflow]] = {
    "chain": _chain, "chord": _chord, "dag": _dag, "fail-fast": _fail_fast, "carry-on": _carry_on
}  # fmt: skip


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict) and "$output" in value:
        yield value["$output"]
    elif isinstance(value, dict):
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _filled(value: Any, outputs: dict[str, Any]) -> Any:
    if isinstance(value, dict) and "$output" in value:
        found = outputs[value["$output"]]
        for key in value.get("path", []):
            found = found[key]
        return found
    if isinstance(value, dict):
        return {key: _filled(item, outputs) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, outputs) for item in value]
    return value


@dataclass
class Plan:
    """One workflow of the run, and what it must end as (worked out from its file format, step by step)."""

    workflow_id: str
    kind: str
    flow: Workflow
    parents: dict[str, set[str]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)  # each step's right output, if it can complete
    blocked: set[str] = field(default_factory=set)  # the failing step and every step waiting for it
    maps: dict[str, int] = field(default_factory=dict)  # map step -> its concurrency

    def __post_init__(self) -> None:
        for step in self.flow.to_dict()["steps"]:
            name, mapped = step["name"], step.get("map")
            self.parents[name] = {*step.get("after", []), *_refs(step.get("params", {})), *_refs(mapped or {})}
            if self.parents[name] & self.blocked:
                self.blocked.add(name)
                continue
            params = _filled(step.get("params", {}), self.outputs)
            try:
                if mapped is None:
                    self.outputs[name] = compute(step["capability"], params)
                else:
                    self.maps[name] = mapped["concurrency"]
                    items = _filled(mapped["over"], self.outputs)
                    self.outputs[name] = [compute(step["capability"], {**params, mapped["as"]: x}) for x in items]
            except PlannedFailureError:
                self.blocked.add(name)

    @property
    def fails(self) -> bool:
        return FAILING in self.blocked

    def ancestors(self, name: str) -> set[str]:
        found, todo = set(), list(self.parents[name])
        while todo:
            if (one := todo.pop()) not in found:
                found.add(one)
                todo.extend(self.parents[one])
        return found

    def must_complete(self) -> set[str]:
        """The steps that complete whatever the timing (with fail_fast, a sibling of the failure may not)."""
        if not self.fails:
            return set(self.outputs)
        sure = set(self.outputs) if not self.flow.fail_fast else self.ancestors(FAILING)
        return sure | {ALERT}


def plans(count: int, *, seed: int, millis: tuple[int, int], ledger: Path) -> list[Plan]:
    """`count` workflows (`wf-000`, ...), the kinds in turn, their steps' durations drawn from `seed`."""
    p = Params(random.Random(seed), millis, ledger)
    kinds = list(KINDS)
    made = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        made.append(Plan(f"wf-{i:03d}", kind, KINDS[kind](i, p)))
    return made
