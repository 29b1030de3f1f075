"""WorkflowHandle: a workflow run as its caller sees it, over the handle of the task that holds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.types import TaskStatus
from worker_abstraction.workflows.records import StepRecord, WorkflowRecord, definition_of, workflow_record


class WorkflowHandle:
    """A workflow run: its record (`record()`), its steps' changes as they come (`async for step in handle`),
    its outputs (`result()`), and `cancel()`. The same on the engine here and on a daemon."""

    __slots__ = ("_task",)

    def __init__(self, task: AsyncTaskHandle) -> None:
        self._task = task

    @property
    def workflow_id(self) -> str:
        return self._task.task_id

    @property
    def status(self) -> TaskStatus:
        """RUNNING once it started, then COMPLETED, FAILED or CANCELED."""
        return self._task.status

    @property
    def task(self) -> AsyncTaskHandle:
        """The handle of the task that holds the workflow (its updates are the workflow's)."""
        return self._task

    def record(self) -> WorkflowRecord:
        """Where the workflow stands now: each step's status (and output, error)."""
        params = self._task.params
        return workflow_record(self.workflow_id, definition_of(params), self._task.updates, self.status, params)

    async def result(self, timeout_seconds: float | None = None) -> dict[str, Any]:
        """Every step's output, by step, once the workflow completed.

        Raises:
            TaskFailedError: a step failed (the message names it; `record()` has every step's error).
            TaskCanceledError: the workflow was canceled.
            TaskTimeoutError: it did not end within `timeout_seconds`.
        """
        await self._task.result(timeout_seconds)
        return self.record().outputs

    async def wait(self, timeout_seconds: float | None = None) -> WorkflowRecord:
        """The workflow's record once it ended, whichever way."""
        await self._task.wait(timeout_seconds)
        return self.record()

    async def cancel(self, reason: str = "") -> bool:
        """Cancel the workflow: its running steps are canceled, no other starts. False if it had ended."""
        return await self._task.cancel(reason)

    async def __aiter__(self) -> AsyncIterator[StepRecord]:
        """Each change of a step's status, from the first on (as `record()` would show that step then); at the
        end, every step whose last change was not heard (the run ended while this watcher was away, say)."""
        told: dict[str, str] = {}
        async for update in self._task:
            name = update.metadata.get("step")
            if name is not None:
                told[name] = update.metadata.get("step_status", "")
                yield StepRecord(
                    name,
                    "",
                    told[name],
                    None,
                    update.metadata.get("error", ""),
                    int(update.metadata.get("tasks", "0") or 0),
                )
            if update.is_terminal:
                for step in self.record().steps.values():
                    if told.get(step.name) != step.status:
                        yield step
