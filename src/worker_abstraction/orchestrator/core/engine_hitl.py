"""The engine's human-in-the-loop calls (`HumanInTheLoop`, a mixin of `Engine`): answer a task's question,
approve or deny a task waiting for approval, and claim a question for a person, wherever the task runs."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from worker_abstraction.errors import TaskNotFoundError, TaskNotWaitingError
from worker_abstraction.exchanges import InputAnswer
from worker_abstraction.orchestrator.core import asking
from worker_abstraction.orchestrator.core.run import TaskRun
from worker_abstraction.types import TaskRecord, TaskStatus

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.crew import Crew
    from worker_abstraction.orchestrator.core.home import TaskHome
    from worker_abstraction.orchestrator.core.records import TaskIndex
    from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory


class HumanInTheLoop:
    """The calls of `Engine` (which holds what is annotated here) about its tasks' questions and approvals."""

    crew: Crew
    directory: WorkerDirectory
    home: TaskHome
    index: TaskIndex

    async def task(self, task_id: str) -> TaskRecord:
        raise NotImplementedError

    def _unknown(self, task_id: str) -> TaskNotFoundError:
        raise NotImplementedError

    async def provide_input(
        self, task_id: str, value_json: str, *, request_id: str = "", answered_by: str = ""
    ) -> InputAnswer:
        """Answer the question a task waits on (see `core.asking`).

        Raises:
            TaskNotFoundError: no task has this id here.
            TaskNotWaitingError: the task waits for no input, or for another question.
            InvalidAnswerError: the value breaks the question's schema.
        """
        published = getattr(self.home, "updates", None)
        if self.index.get(task_id) is None and published is not None:  # (another engine runs it: a shared home)
            await self.task(task_id)  # (NOT_FOUND for an unknown task)
            updates = await published(task_id)
            return await asking.answer_elsewhere(
                task_id, updates, self.directory.workers, self.crew.links, value_json,
                request_id=request_id, answered_by=answered_by,
            )  # fmt: skip
        return await self._live_run(task_id, "input").provide_input(
            value_json, request_id=request_id, answered_by=answered_by
        )

    async def decide(self, task_id: str, approved: bool, *, decided_by: str = "", reason: str = "") -> TaskStatus:
        """Approve or deny a task waiting for approval (see `core.approval`); returns its status after it. A
        task another engine runs (a shared home) gets the decision through its home, which tells that engine.

        Raises:
            TaskNotFoundError: no task has this id.
            TaskNotWaitingError: the task waits for no approval.
        """
        elsewhere = getattr(self.home, "decide", None)
        if self.index.get(task_id) is None and elsewhere is not None:
            status: TaskStatus = await elsewhere(task_id, approved, decided_by, reason)
            return status
        run = self._live_run(task_id, "approval")
        run.decide(approved, decided_by, reason)
        return run.state.status

    def decided(self, task_id: str, approved: bool, decided_by: str, reason: str) -> None:
        run = self.index.live.get(task_id)
        if isinstance(run, TaskRun):
            # (decided here already, or it no longer waits: the first decision stands)
            with contextlib.suppress(TaskNotWaitingError):
                run.decide(approved, decided_by, reason)

    def claim(self, task_id: str, claimant: str, *, release: bool = False, force: bool = False) -> TaskRecord:
        """Take (or give back) a task's pending question for `claimant`; returns its record (see `core.asking`).

        Raises:
            TaskNotFoundError: no task has this id here.
            TaskNotWaitingError: it waits for no input, or another claimant holds it.
        """
        run = self._live_run(task_id, "input")
        run.claim(claimant, release=release, force=force)
        return run.record()

    def _live_run(self, task_id: str, what: str) -> TaskRun:
        run = self.index.live.get(task_id)
        if run is None:
            if self.index.get(task_id) is not None:
                raise TaskNotWaitingError(task_id, f"has finished: it waits for no {what}")
            raise self._unknown(task_id)
        if not isinstance(run, TaskRun):
            raise TaskNotWaitingError(task_id, f"is a workflow: its steps, not the workflow, may wait for {what}")
        return run
