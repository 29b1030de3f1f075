"""A run's cancel path: asking its worker to cancel the task, asking again while nobody hears, and ending it
CANCELED when the worker cannot cancel (seed-built) or never confirms (see `run.py`'s docstring)."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from worker_abstraction.orchestrator.core.phase import Phase
from worker_abstraction.orchestrator.edge.dispatch import CancelAnswer
from worker_abstraction.types import TaskStatus

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.run import TaskRun

logger = logging.getLogger(__name__)

CANCEL_RESEND_SECONDS = 1.0
CANCEL_CONFIRM_SECONDS = 30.0  # a cancel the worker never confirms ends the task after this long


async def cancel(run: TaskRun, reason: str) -> bool:
    """Cancel the task (see `run.py`'s docstring); False if it had already finished."""
    if run.phase is Phase.DONE:
        return False
    if run.cancel_reason:
        return True
    run.cancel_reason = reason
    await run._journal.cancel_requested(run.spec.task_id, reason)
    if run.done():  # it ended while the request was being stored
        return run.state.status is TaskStatus.CANCELED
    if run.phase is Phase.WAITING:
        run._crew.scheduler.withdraw(run)
    if run.phase in (Phase.WAITING, Phase.BACKOFF, Phase.DELAYED, Phase.APPROVAL, Phase.ASKING):
        run._finish_canceled(reason)
        return True
    run._timers.start("cancel", CANCEL_CONFIRM_SECONDS, functools.partial(cancel_unconfirmed, run))
    if run.phase is Phase.SENDING:  # the cancel follows the dispatch once the worker has it
        return True
    return await cancel_on_worker(run)


async def cancel_on_worker(run: TaskRun) -> bool:
    state = run.state
    if run._hold_lost():
        return False
    link = run._crew.links.get(state.worker_address)
    answer = await link.cancel(run.spec.task_id, run.cancel_reason)
    if run.done():
        return state.status is TaskStatus.CANCELED
    if answer is CancelAnswer.FINISHED:
        return False  # its terminal update is on the way: it ends as it ended
    if answer is CancelAnswer.UNSUPPORTED:
        note = f"worker {state.worker_id} cannot cancel tasks (no CancelTask), so its late result is ignored"
        logger.warning("task %s canceled here: %s", run.spec.task_id, note, extra=run._log_fields())
        run._finish_canceled(f"{run.cancel_reason} ({note})")
        return True
    if answer in (CancelAnswer.UNREACHABLE, CancelAnswer.UNKNOWN):
        # Not delivered: keep asking until the task ends one way or another (a lost worker's attempt
        # fails and, being canceled, is not retried; the confirmation timer ends it at the latest).
        run._timers.start("resend-cancel", CANCEL_RESEND_SECONDS, functools.partial(resend_cancel, run))
    return True


def resend_cancel(run: TaskRun) -> None:
    if run.phase is Phase.RUNNING:
        run._spawn(cancel_on_worker(run), "resend-cancel")


def cancel_unconfirmed(run: TaskRun) -> None:
    if not run.done():
        worker = run.state.worker_id
        run._finish_canceled(f"{run.cancel_reason} (worker {worker} did not confirm within "
                             f"{CANCEL_CONFIRM_SECONDS:g}s; its late result is ignored)")  # fmt: skip
