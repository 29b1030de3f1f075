"""Runs one accepted task: its handler, its deadline, and the updates it publishes."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic_core

from worker_abstraction.capability import CapabilityDef
from worker_abstraction.context import TaskContext
from worker_abstraction.types import TaskFailure
from worker_abstraction.worker import failures
from worker_abstraction.worker.tasks import TaskRecord

logger = logging.getLogger(__name__)


async def run_task(
    record: TaskRecord,
    definition: CapabilityDef,
    owner: object,
    arguments: dict[str, Any],
    *,
    timeout_seconds: float,
    metadata: Mapping[str, str],
    executor: Executor,
) -> None:
    """Drive a task from PENDING to a terminal state; never raises (a failing handler means FAILED)."""
    record.running()
    loop = asyncio.get_running_loop()
    deadline_monotonic = time.monotonic() + timeout_seconds if timeout_seconds > 0 else None
    if definition.context_parameter is not None:
        arguments[definition.context_parameter] = TaskContext(
            task_id=record.task_id,
            capability=definition.spec.name,
            params=dict(arguments),
            metadata=metadata,
            worker_id=record.worker_id,
            deadline=datetime.now(UTC) + timedelta(seconds=timeout_seconds) if timeout_seconds > 0 else None,
            deadline_monotonic=deadline_monotonic,
            publish_progress=record.progress,
            loop=loop,
            cancel_requested=record.cancel_requested,
        )
    failure: TaskFailure | None = None
    output_json = ""
    try:
        async with asyncio.timeout_at(_loop_deadline(loop, timeout_seconds)) as scope:
            if definition.is_async:
                result = await definition.function(owner, **arguments)
            else:
                call = functools.partial(definition.function, owner, **arguments)
                result = await loop.run_in_executor(executor, call)
        output_json = pydantic_core.to_json(result).decode()
    except TimeoutError as error:
        # Only our own deadline is DeadlineExceeded; a TimeoutError the handler raised itself is its error.
        failure = failures.deadline_exceeded(timeout_seconds) if scope.expired() else failures.handler_error(error)
    except asyncio.CancelledError:
        # Asked to cancel (and past the grace period), or stopped by the worker shutting down: only the first
        # was wanted; the second is the worker's doing, and the task deserves another try elsewhere.
        asked = record.cancel_requested.is_set()
        record.canceled(failures.canceled(record.cancel_reason) if asked else failures.worker_stopped())
        raise
    except pydantic_core.PydanticSerializationError as error:
        failure = failures.output_not_serializable(error)
    except Exception as error:
        logger.debug("task %s raised", record.task_id, exc_info=True, extra={"task_id": record.task_id})
        failure = failures.handler_error(error)
    if record.cancel_requested.is_set():
        # Once a cancel was asked for (and CancelTask answered canceled=True), the task ends CANCELED whatever
        # the handler did next: raised, overran, or noticed the request and returned normally.
        record.canceled(failures.canceled(record.cancel_reason))
    elif failure is not None:
        record.failed(failure)
    else:
        record.completed(output_json)


def _loop_deadline(loop: asyncio.AbstractEventLoop, timeout_seconds: float) -> float | None:
    return loop.time() + timeout_seconds if timeout_seconds > 0 else None
