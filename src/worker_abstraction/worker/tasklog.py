"""The lines a worker logs about each task, as Celery's workers do: one when it is received, one when it ends.

    received                                  INFO
    succeeded, with its duration              INFO
    failed: the handler raised                ERROR, with the handler's traceback in full
    failed: timeout, output JSON cannot carry ERROR, one line
    canceled on request, with the reason      INFO
    cut short by the worker stopping          WARNING

Received and succeeded are lifecycle events of a task, so INFO, where Celery puts them: `wa worker` (INFO by
default) shows them, and a program that embeds a worker shows them only if it logs INFO. They all go to this
module's logger, so such a program can keep the worker's own lines and quiet these
(`logging.getLogger("worker_abstraction.worker.tasklog").setLevel(logging.WARNING)` keeps failures and
tasks cut short).

Each record carries `task_id`, `capability`, `worker_id` and `attempt` in `extra=`, for formatters that index
fields (`--log-format json`). Never the task's
arguments or output: they can be large, or secret.

Received and succeeded may be written at the end of the event loop's turn, with the others of that turn
(`log.SAME_TURN`): one write to stderr per turn rather than two per task. "received" is logged before the
task's handler is started, so it is out before the handler runs; "succeeded" is made once the task's answer
is on its way (two turns of the loop later), so the answer never waits for its line.

These calls sit on every task's path, so they cost next to nothing when their level is off: the level is
checked before the `extra` dict is made, and messages take lazy %-args, formatted only by a handler that emits
them.
"""

from __future__ import annotations

import asyncio
import logging

from worker_abstraction.observability import log
from worker_abstraction.types import FailureOrigin, TaskFailure
from worker_abstraction.worker.tasks import TaskRecord

logger = logging.getLogger(__name__)

_INFO, _WARNING, _ERROR = logging.INFO, logging.WARNING, logging.ERROR


def received(record: TaskRecord) -> None:
    """A task was accepted and will run (a refused one is logged at DEBUG by the servicer)."""
    if logger.isEnabledFor(_INFO):
        # Attempt 0 is an orchestrator that does not number attempts: the handler's context calls it 1, too.
        logger.info(
            "task %s[%s] received (attempt %d)",
            record.capability,
            record.task_id,
            max(record.attempt, 1),
            extra=_same_turn(record),
        )


def succeeded(record: TaskRecord, seconds: float) -> None:
    """The handler returned after `seconds`, and its output is on its way.

    On an event loop the line is made two turns later: the task's answer, queued in this turn, is written
    first (a line costs tens of microseconds, which the answer need not wait for). The context (a task's span,
    for the trace id) goes with it.
    """
    if logger.isEnabledFor(_INFO):
        value, unit = _duration(seconds)
        arguments = (record.capability, record.task_id, value, unit, _same_turn(record))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (no loop on this thread: now)
            _succeeded(*arguments)
            return
        loop.call_soon(loop.call_soon, _succeeded, *arguments)


def _succeeded(capability: str, task_id: str, value: float, unit: str, extra: dict[str, object]) -> None:
    logger.info("task %s[%s] succeeded in %.2f %s", capability, task_id, value, unit, extra=extra)


def failed(record: TaskRecord, failure: TaskFailure, seconds: float, raised: BaseException | None = None) -> None:
    """The task ended FAILED after `seconds`.

    Args:
        raised: what the handler raised, if it did; its traceback is logged in full.
    """
    if logger.isEnabledFor(_ERROR):
        value, unit = _duration(seconds)
        logger.error(
            "task %s[%s] failed after %.2f %s: %s: %s",
            record.capability,
            record.task_id,
            value,
            unit,
            failure.type,
            failure.message,
            exc_info=raised,
            extra=_fields(record),
        )


def canceled(record: TaskRecord, failure: TaskFailure, seconds: float | None) -> None:
    """The task ended CANCELED after `seconds` (None: before its handler started).

    Canceled on request is the requester's business (INFO); cut short by the worker stopping is the
    worker's (WARNING). No traceback: a handler that raised on its way out was asked to stop.
    """
    level = _INFO if failure.origin is FailureOrigin.CANCELED else _WARNING
    if not logger.isEnabledFor(level):
        return
    extra = _fields(record)
    if seconds is None:
        message = "task %s[%s] canceled before it started: %s"
        logger.log(level, message, record.capability, record.task_id, failure.message, extra=extra)
        return
    value, unit = _duration(seconds)
    message = "task %s[%s] canceled after %.2f %s: %s"
    logger.log(level, message, record.capability, record.task_id, value, unit, failure.message, extra=extra)


def _fields(record: TaskRecord) -> dict[str, object]:
    return {
        "task_id": record.task_id,
        "capability": record.capability,
        "worker_id": record.worker_id,
        "attempt": max(record.attempt, 1),
    }


def _same_turn(record: TaskRecord) -> dict[str, object]:
    """The fields, and leave for the `wa` stderr handler to write the line with the others of this loop turn."""
    fields = _fields(record)
    fields[log.SAME_TURN] = True
    return fields


def _duration(seconds: float) -> tuple[float, str]:
    """Milliseconds below a second, seconds above: "0.04 ms", "312.50 ms", "12.30 s"."""
    return (seconds * 1000, "ms") if seconds < 1 else (seconds, "s")
