"""Helpers for testing workers without a network: run one capability with a real context.

result = await run_capability(MyWorker(), "word_count", text="a b c")
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from worker_abstraction.errors import InvalidParametersError, TaskFailedError
from worker_abstraction.types import TaskStatus
from worker_abstraction.worker.base import BaseWorker
from worker_abstraction.worker.runner import run_task
from worker_abstraction.worker.tasks import TaskRecord


async def run_capability(worker: BaseWorker, capability: str, *, timeout_seconds: float = 0, **params: Any) -> Any:
    """Validate `params` as the worker would, run the capability, and return its decoded output.

    Raises:
        InvalidParametersError: the parameters would be rejected (every problem listed).
        TaskFailedError: the capability raised or timed out (message as a caller would see it).
    """
    definition = worker.capabilities.get(capability)
    if definition is None:
        raise InvalidParametersError([f"unknown capability {capability!r}"])
    arguments, problems = definition.parse_arguments({k: json.dumps(v) for k, v in params.items()})
    if problems:
        raise InvalidParametersError(problems)
    record = TaskRecord("test-task", capability, worker.worker_id)
    with ThreadPoolExecutor(max_workers=4) as executor:
        await run_task(
            record, definition, worker, arguments, timeout_seconds=timeout_seconds, metadata={}, executor=executor
        )
    final = record.log[-1]
    if TaskStatus(final.status) is not TaskStatus.COMPLETED:
        raise TaskFailedError(record.task_id, final.error_message)
    return json.loads(final.output_json)
