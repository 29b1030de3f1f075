"""What an operator may do to one task from its page: cancel it while it runs, or run it again once it failed.

Retry submits the task again as a new task: the same capability, arguments and options (its retry policy,
timeouts, priority, tags, pinned worker, metadata), a new id and no idempotency key, the same owner, as
requeuing a dead letter does. A failed task that is still a dead letter is requeued (so it leaves the
dead-letter queue instead of staying there beside its new run).
"""

from __future__ import annotations

import dataclasses
import logging

from worker_abstraction.errors import TaskNotFoundError, WorkerAbstractionError
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator
from worker_abstraction.types import TaskStatus

logger = logging.getLogger(__name__)

RETRYABLE = frozenset({TaskStatus.FAILED, TaskStatus.CANCELED})
CANCELABLE = frozenset(
    {TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.INPUT_REQUIRED, TaskStatus.APPROVAL_REQUIRED}
)


class ActionRefusedError(WorkerAbstractionError):
    """The task is not in a state the action applies to (the dashboard answers 409)."""

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(f"task {task_id[:64]}: {reason}")
        self.task_id, self.reason = task_id, reason


async def cancel(orchestrator: AsyncOrchestrator, task_id: str, *, by: str) -> TaskStatus:
    """Ask for the task to be canceled; its status once asked (CANCELED, or the one it ends with).

    Raises:
        TaskNotFoundError: the task is unknown.
        ActionRefusedError: it has finished already.
    """
    record = await orchestrator.task(task_id)
    if record.status not in CANCELABLE:
        raise ActionRefusedError(task_id, f"it has finished ({record.status.name}): there is nothing to cancel")
    reason = f"canceled from the dashboard by {by}"
    if not await orchestrator.cancel(task_id, reason):
        raise ActionRefusedError(task_id, "it finished before the cancel reached it")
    logger.info("task %s %s", task_id, reason, extra={"task_id": task_id})
    return (await orchestrator.task(task_id)).status


async def retry(orchestrator: AsyncOrchestrator, task_id: str, *, by: str) -> AsyncTaskHandle:
    """Submit a FAILED or CANCELED task again as a new task; its handle.

    Raises:
        TaskNotFoundError: the task is unknown.
        ActionRefusedError: it has not failed or been canceled, or its submission is no longer kept.
        The errors of submitting it (no worker, a full queue, ...).
    """
    record = await orchestrator.task(task_id)
    if record.status not in RETRYABLE:
        raise ActionRefusedError(task_id, f"only a FAILED or CANCELED task can be retried; it is {record.status.name}")
    engine = orchestrator.engine
    handle: AsyncTaskHandle | None = None
    if record.dead_lettered:
        try:
            handle = await orchestrator.requeue_dead_letter(task_id)
        except TaskNotFoundError:  # no longer a dead letter (requeued or purged meanwhile): submitted below
            handle = None
    if handle is None:
        submitted = await engine.submission(task_id)
        if submitted is None:
            raise ActionRefusedError(task_id, "its submission is no longer kept, so it cannot be submitted again")
        options = dataclasses.replace(submitted.options, task_id="", idempotency_key="")  # a new task
        spec = engine.spec(submitted.capability, submitted.params, options)
        handle = (await engine.submit_spec(dataclasses.replace(spec, owner=submitted.owner))).handle
    new_id = handle.task_id
    logger.info("task %s retried from the dashboard by %s as %s", task_id, by, new_id, extra={"task_id": task_id})
    return handle
