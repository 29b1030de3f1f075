"""A workflow's steps as tasks: what `WorkflowRun` asks of the engine (`Steps`), and `StepTasks`, which starts one
step (its parameters made from the outputs so far), submits its task (or, for a map, each element's) under the
fixed id `step_task_id` gives it, follows a task submitted before under that id, and returns the step's output
or raises `StepFailed`. Also the order the steps are looked at in (`start_order`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from worker_abstraction.errors import (
    NoWorkerError,
    QueueFullError,
    TaskExistsError,
    TaskNotFoundError,
    WorkerAbstractionError,
)
from worker_abstraction.options import TaskOptions
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Acceptance
from worker_abstraction.types import TaskSpec, TaskStatus
from worker_abstraction.workflows.inputs import UnresolvedInputError, follow, resolve
from worker_abstraction.workflows.model import Step, Workflow, order
from worker_abstraction.workflows.records import CANCELED, FAILED, step_task_id

logger = logging.getLogger(__name__)

RETRY_SUBMIT_SECONDS = (0.2, 5.0)  # a step refused for want of workers or room is submitted again, backing off


class Steps(Protocol):
    """What a workflow's run asks of the engine: its steps are tasks like any other."""

    def spec(
        self,
        capability: str,
        params: Mapping[str, Any] | None,
        options: TaskOptions,
        trace_context: tuple[tuple[str, str], ...] = (),
    ) -> TaskSpec: ...

    async def submit_spec(self, spec: TaskSpec) -> Acceptance: ...

    async def watch(self, task_id: str) -> AsyncTaskHandle: ...

    async def cancel(self, task_id: str, reason: str) -> bool: ...


class StepFailed(Exception):
    """A step ended without an output."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class StepTasks:
    """The tasks of the steps of one workflow (the task `workflow`): `started(step, task_ids)` is told each step's
    task ids when it starts (for the run to mark it RUNNING and to cancel them if need be)."""

    def __init__(self, workflow: TaskSpec, steps: Steps, started: Callable[[str, list[str]], None]) -> None:
        self._workflow = workflow
        self._steps = steps
        self._started = started

    def launch(self, step: Step, outputs: Mapping[str, Any]) -> asyncio.Task[Any]:
        """Start a step: the future of its output (it fails with StepFailed, or with what went wrong)."""
        try:
            running = self.start(step, outputs)
        except Exception as error:  # (the future fails with it, as it would have had the step's coroutine raised it)
            running = _failing(error)
        return asyncio.ensure_future(running)

    def start(self, step: Step, outputs: Mapping[str, Any]) -> Coroutine[Any, Any, Any]:
        """Make the step's parameters and mark it RUNNING, now, in the turn of the loop that found it may start:
        the update saying so then leaves with the one that let it start (one message to the caller, not two);
        then the coroutine that runs its task (or, for a map, each element's) and returns its output.

        Raises:
            StepFailed: its parameters cannot be made.
        """
        try:
            if step.map is None:
                params = resolve(step.params, outputs)
                task_id = step_task_id(self._workflow.task_id, step.name)
                self._started(step.name, [task_id])
                return self.task(step, task_id, params)
            items = follow(step.map.over, outputs)
        except UnresolvedInputError as error:
            raise StepFailed(FAILED, f"its parameters cannot be made: {error}") from None
        if not isinstance(items, list):
            raise StepFailed(FAILED, f"it maps over a list, and the output it names is {type(items).__name__}")
        try:
            base = resolve(step.params, outputs)
        except UnresolvedInputError as error:
            raise StepFailed(FAILED, f"its parameters cannot be made: {error}") from None
        ids = [step_task_id(self._workflow.task_id, step.name, i) for i in range(len(items))]
        self._started(step.name, ids)
        return self.map(step, ids, items, base)

    async def map(self, step: Step, ids: list[str], items: list[Any], base: Mapping[str, Any]) -> list[Any]:
        """Each element's task (its item as the parameter `step.map.item`, with `base`), at most the map's
        `concurrency` at once, started in order; their outputs, in order.

        Raises:
            StepFailed: a task of it failed or was canceled (the others are then canceled).
        """
        assert step.map is not None
        item, concurrency = step.map.item, step.map.concurrency
        outputs: list[Any] = [None] * len(ids)
        taken = 0

        # `concurrency` lanes, each running the next element once its last one completed: the elements start
        # in order, at most `concurrency` at once, as a semaphore would let them, without a coroutine and a
        # future waiting for each of the thousands that have not started yet.
        async def lane() -> None:
            nonlocal taken
            while taken < len(ids):
                i = taken
                taken += 1
                outputs[i] = await self.task(step, ids[i], {**base, item: items[i]})

        lanes = [asyncio.ensure_future(lane()) for _ in range(min(max(1, concurrency), len(ids)))]
        try:
            await asyncio.gather(*lanes)
            return outputs
        finally:
            for one in lanes:
                one.cancel()

    async def task(self, step: Step, task_id: str, params: Mapping[str, Any]) -> Any:
        handle = await self.submit(step, task_id, params)
        try:
            return await handle.result()
        except WorkerAbstractionError as error:
            status = CANCELED if handle.status is TaskStatus.CANCELED else FAILED
            raise StepFailed(status, str(error)) from None

    async def submit(self, step: Step, task_id: str, params: Mapping[str, Any]) -> AsyncTaskHandle:
        """The step's task: submitted under its fixed id, or followed if that id was taken (submitted
        before). A refusal for want of workers or room is tried again, backing off, until the workflow ends."""
        workflow = self._workflow
        options = dataclasses.replace(step.options, task_id=task_id, idempotency_key="")
        # Under the run's owner, and in the run's trace: a workflow is one trace, each step's tasks in it.
        made = self._steps.spec(step.capability, params, options, workflow.trace_context)
        spec = made if made.owner == workflow.owner else dataclasses.replace(made, owner=workflow.owner)
        pause = RETRY_SUBMIT_SECONDS[0]
        while True:
            try:
                return (await self._steps.submit_spec(spec)).handle
            except TaskExistsError:
                try:
                    return await self._steps.watch(task_id)
                except TaskNotFoundError:  # (accepted by another engine a moment ago, not readable yet)
                    pass
            except (NoWorkerError, QueueFullError) as error:
                logger.info("workflow %s: step %r waits: %s", workflow.task_id, step.name, error)
            except WorkerAbstractionError as error:
                raise StepFailed(FAILED, str(error)) from None
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_SUBMIT_SECONDS[1])


def start_order(workflow: Workflow) -> list[Step]:
    """`order(workflow)` made in one pass over the steps and their parents (it looks at every pending step once
    per wave): a step's wave is one past its last parent's, and the steps of a wave keep the workflow's order.
    A workflow `order` could not place whole (a cycle, a parent that is no step) is left to it."""
    steps = workflow.steps
    parents = {step.name: step.parents for step in steps}
    children: dict[str, list[str]] = {}
    left = {}
    for name, of in parents.items():
        left[name] = len(of)
        for parent in of:
            children.setdefault(parent, []).append(name)
    wave = dict.fromkeys((name for name, count in left.items() if not count), 0)
    ready = list(wave)
    while ready:
        name = ready.pop()
        for child in children.get(name, ()):
            left[child] -= 1
            if not left[child]:
                wave[child] = 1 + max(wave[parent] for parent in parents[child])
                ready.append(child)
    if len(wave) != len(steps) or len(parents) != len(steps):
        return order(workflow)
    position = {step.name: i for i, step in enumerate(steps)}
    return sorted(steps, key=lambda step: (wave[step.name], position[step.name]))


async def _failing(error: Exception) -> Any:
    raise error
