"""Human workers: capabilities served by people, through their inbox (`wa inbox`, the dashboard's /inbox).

`human_worker(["review", ...])` makes a worker class whose capabilities people answer. It is a worker like
any other: it registers, heartbeats and has slots (`max_concurrent_tasks`: how many tasks its people may
have open at once); the orchestrator dispatches to it, retries a task whose human worker died, cancels, and
enforces timeouts, as for a program. Each task asks its question, the task's `prompt` (with its `details`
shown below it), and waits, INPUT_REQUIRED, for as long as the task may run (its timeout; none: for good).
A person lists the waiting tasks (`wa inbox list`), claims one so nobody else answers it (`wa inbox claim`),
and answers it (`wa inbox answer`); the answer, checked against the task's `schema` (or the worker's
`answer_schema`), is the task's result, and the record keeps who claimed and who answered.

    wa inbox serve review --registry 127.0.0.1:50051 --slots 10
    wa submit review --param prompt="Refund order 1234?" --param details='{"amount": 120}'
"""

from __future__ import annotations

import json
import types
from collections.abc import Sequence
from typing import Any

from worker_abstraction.capability import capability
from worker_abstraction.context import TaskContext
from worker_abstraction.worker.base import BaseWorker


class HumanWorker(BaseWorker):
    """A worker whose capabilities people answer (made by `human_worker`)."""

    name = "human-worker"
    answer_schema: dict[str, Any] | None = None


def human_worker(capabilities: Sequence[str], *, answer_schema: dict[str, Any] | None = None) -> type[HumanWorker]:
    """A `HumanWorker` class serving `capabilities`, each answered by a person.

    Args:
        capabilities: the capabilities' names.
        answer_schema: the JSON Schema an answer must satisfy when the task brings none (None: any JSON value).

    Raises:
        ValueError: no capability, or one named twice.
    """
    names = list(capabilities)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"name each capability once, at least one: got {names[:10]}")
    members: dict[str, Any] = {"answer_schema": answer_schema}
    for name in names:
        members[f"_human_{len(members)}"] = capability(
            name=name, description=f"{name}: answered by a person (wa inbox)"
        )(_copy(_ask))
    return type("HumanWorker", (HumanWorker,), members)


def _copy(function: Any) -> Any:
    """A function object of its own for each capability (the decorator marks the function it is given)."""
    made = types.FunctionType(
        function.__code__, function.__globals__, function.__name__, function.__defaults__, function.__closure__
    )
    made.__kwdefaults__ = function.__kwdefaults__
    made.__annotations__ = dict(function.__annotations__)
    made.__doc__ = function.__doc__
    made.__qualname__ = function.__qualname__
    return made


async def _ask(
    self: HumanWorker,
    prompt: str,
    ctx: TaskContext,
    details: dict[str, Any] | None = None,
    schema: dict[str, Any] | None = None,
) -> Any:
    """Ask a person `prompt` (with `details`), and return the answer.

    Args:
        prompt: the question, as a person reads it.
        details: what the person needs to see to answer (shown as JSON below the prompt).
        schema: the JSON Schema the answer must satisfy (default: the worker's).
    """
    text = prompt if not details else f"{prompt}\n\n{json.dumps(details, indent=2, ensure_ascii=False)}"
    left = ctx.time_remaining_seconds()
    return await ctx.request_input(text, schema=schema or self.answer_schema, timeout=left or None)
