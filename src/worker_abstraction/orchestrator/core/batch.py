"""Many tasks through one submit call, at most `max_pending` unfinished at once, yielded as they finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from worker_abstraction.errors import InvalidTaskOptionsError
from worker_abstraction.options import TaskOptions
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle

Submit = Callable[[str, Mapping[str, Any], TaskOptions], Awaitable[AsyncTaskHandle]]


async def execute_many(
    submit: Submit, capability: str, params: Iterable[Mapping[str, Any]], options: TaskOptions, *, max_pending: int
) -> AsyncIterator[AsyncTaskHandle]:
    if max_pending < 1:
        raise InvalidTaskOptionsError([f"max_pending must be >= 1, got {max_pending}"])
    if options.task_id or options.idempotency_key:
        # One id (or key) for many tasks would make every task after the first the same task.
        raise InvalidTaskOptionsError(["execute_many gives each task its own id: no task_id or idempotency_key"])
    finished: asyncio.Queue[AsyncTaskHandle] = asyncio.Queue()
    pending = 0
    for item in params:
        while pending >= max_pending:
            yield await finished.get()
            pending -= 1
        handle = await submit(capability, item, options)
        handle.add_done_callback(finished.put_nowait)
        pending += 1
    while pending:
        yield await finished.get()
        pending -= 1
