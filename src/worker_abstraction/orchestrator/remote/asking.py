"""The daemon's human-in-the-loop calls on `RemoteOrchestrator` (`RemoteAsking`, a mixin): answer a task's
question, claim it for a person, approve or deny a task waiting for approval (see `AsyncOrchestratorAPI`)."""

from __future__ import annotations

from typing import Any

from worker_abstraction import _convert
from worker_abstraction._convert.tasks import STATUSES
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.exchanges import InputAnswer, answer_json
from worker_abstraction.types import TaskRecord, TaskStatus


class RemoteAsking:
    """The calls of `RemoteOrchestrator` (which holds `_stub` and `_call`) about questions and approvals."""

    _stub: Any

    async def _call(self, method: Any, request: Any) -> Any:
        raise NotImplementedError

    async def provide_input(
        self, task_id: str, value: Any, *, request_id: str = "", answered_by: str = ""
    ) -> InputAnswer:
        """Answer the question a task waits on (see `AsyncTaskHandle.provide_input`); who answered is what the
        daemon's credentials say (`answered_by` when it checks none).

        Raises:
            InvalidAnswerError: the value breaks the question's schema (every problem listed).
            TaskNotWaitingError: the task waits for no input, or for another question.
            TaskNotFoundError: the daemon does not know the task.
        """
        return await self._answer(task_id, answer_json(value), request_id=request_id, answered_by=answered_by)

    async def _answer(
        self, task_id: str, value_json: str, *, request_id: str = "", answered_by: str = ""
    ) -> InputAnswer:
        """`provide_input` with the answer already encoded as JSON (a handle's)."""
        request = pb.ProvideInputRequest(
            task_id=task_id, request_id=request_id, value_json=value_json, answered_by=answered_by
        )
        response = await self._call(self._stub.ProvideInput, request)
        return InputAnswer(response.request_id, value_json, answered_by)

    async def claim(self, task_id: str, claimant: str = "", *, release: bool = False) -> TaskRecord:
        request = pb.ClaimRequest(task_id=task_id, claimant=claimant, release=release)
        return _convert.record_from_pb(await self._call(self._stub.ClaimTask, request))

    async def approve(self, task_id: str, reason: str = "") -> TaskStatus:
        """Approve a task waiting for approval: it goes on (operators only, when credentials are on).

        Raises:
            TaskNotWaitingError: the task waits for no approval.
            TaskNotFoundError: the daemon does not know the task.
        """
        response = await self._call(self._stub.ApproveTask, pb.ApprovalRequest(task_id=task_id, reason=reason))
        return STATUSES.get(response.status, TaskStatus.UNKNOWN)

    async def deny(self, task_id: str, reason: str = "") -> TaskStatus:
        """Deny a task waiting for approval: it ends CANCELED with `reason` (operators only)."""
        response = await self._call(self._stub.DenyTask, pb.ApprovalRequest(task_id=task_id, reason=reason))
        return STATUSES.get(response.status, TaskStatus.UNKNOWN)
