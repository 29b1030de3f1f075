"""Following a task over the seed's StreamTaskStatus, resuming after the last update seen."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from grpc import aio

from worker_abstraction import _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.orchestrator.handle import AsyncTaskHandle

logger = logging.getLogger(__name__)

# How long to keep trying to reach a worker whose status stream broke before declaring the task lost.
RECONNECT_WINDOW_SECONDS = 10.0


def follow(handle: AsyncTaskHandle, stub: pb_grpc.WorkerServiceStub) -> None:
    """Start delivering the task's updates to its handle from StreamTaskStatus."""
    handle.follower = asyncio.create_task(_follow(handle, stub), name=f"follow-{handle.task_id}")


async def _follow(handle: AsyncTaskHandle, stub: pb_grpc.WorkerServiceStub) -> None:
    try:
        await _stream_until_terminal(handle, stub)
    except asyncio.CancelledError:
        raise
    except Exception as error:  # never leave a caller waiting on a follower that died
        logger.exception("following task %s failed", handle.task_id)
        handle.lost(f"orchestrator lost track of the task: {error}")


async def _stream_until_terminal(handle: AsyncTaskHandle, stub: pb_grpc.WorkerServiceStub) -> None:
    lost_since: float | None = None
    backoff = 0.05
    while not handle.done():
        request = pb.GetTaskStatusRequest(task_id=handle.task_id, after_sequence=handle.last_sequence, from_start=True)
        try:
            async for response in stub.StreamTaskStatus(request):
                update = _convert.update_from_pb(response.result)
                handle.deliver(update)
                lost_since, backoff = None, 0.05
                if update.is_terminal or handle.done():  # this attempt is over (a retry has its own carrier)
                    return
        except aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                handle.lost(f"worker {handle.worker_id} no longer knows the task")
                return
            if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                handle.lost(f"status stream failed: {error.code().name}: {error.details()}")
                return
        # The stream broke (or ended early): resume after the last update we saw.
        lost_since = lost_since or time.monotonic()
        if time.monotonic() - lost_since > RECONNECT_WINDOW_SECONDS:
            handle.lost(f"worker {handle.worker_id} at {handle.worker_address} is unreachable")
            return
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 1.0)
