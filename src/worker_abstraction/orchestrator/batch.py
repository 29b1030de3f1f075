"""Many tasks through one submit call, at most `max_pending` unfinished at once, yielded as they finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from worker_abstraction.orchestrator.handle import AsyncTaskHandle

Submit = Callable[..., Awaitable[AsyncTaskHandle]]  # execute_task(capability, params, **options)


async def execute_many(
    submit: Submit, capability: str, params: Iterable[Mapping[str, Any]], *, max_pending: int, **options: Any
) -> AsyncIterator[AsyncTaskHandle]:
    finished: asyncio.Queue[AsyncTaskHandle] = asyncio.Queue()
    pending = 0
    for item in params:
        while pending >= max_pending:
            yield await finished.get()
            pending -= 1
        handle = await submit(capability, item, **options)
        handle.add_done_callback(finished.put_nowait)
        pending += 1
    while pending:
        yield await finished.get()
        pending -= 1
