"""Following one attempt over the seed's StreamTaskStatus, resuming after the last update seen.

When the stream breaks, the follower asks whether a worker still answers at the address before it tries
again. A worker whose port turns connections away is gone (a process killed with SIGKILL, or restarted and
so without the task): the attempt is lost at once and the task can be retried elsewhere within a second.
A worker that does not answer at all (a paused process, a network that swallows packets) gets a longer
window to come back.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable

import grpc
from grpc import aio

from worker_abstraction import _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.orchestrator.core.clock import Clock
from worker_abstraction.orchestrator.edge.dispatch import AttemptSink

logger = logging.getLogger(__name__)

# How long a worker that stopped answering may stay silent before its attempt counts as lost.
RECONNECT_WINDOW_SECONDS = 10.0
# Turned away this many times in a row: nothing listens at the address any more.
REFUSALS_BEFORE_LOST = 2
_FIRST_BACKOFF_SECONDS = 0.05
_MAX_BACKOFF_SECONDS = 1.0


class Reach(enum.Enum):
    ANSWERED = "answered"
    REFUSED = "refused"  # turned away at once: no process listens there
    SILENT = "silent"  # no answer in time
    NOT_A_WORKER = "not a worker"  # something answers, but not as a worker
    DENIED = "denied"  # a worker answers, and refuses our credentials


async def follow(
    stub: pb_grpc.WorkerServiceStub,
    sink: AttemptSink,
    reach: Callable[[], Awaitable[tuple[Reach, str]]],
    clock: Clock,
) -> None:
    """Deliver the attempt's updates to `sink` until it ends or is given up; never raises."""
    try:
        await _follow(stub, sink, reach, clock)
    except asyncio.CancelledError:
        raise
    except Exception as error:  # never leave a task waiting on a follower that died
        logger.exception("following task %s failed", sink.task_id)
        sink.lost(f"the orchestrator lost track of the task: {error!r}")


async def _follow(
    stub: pb_grpc.WorkerServiceStub,
    sink: AttemptSink,
    reach: Callable[[], Awaitable[tuple[Reach, str]]],
    clock: Clock,
) -> None:
    silent_since: float | None = None
    refusals = 0
    backoff = _FIRST_BACKOFF_SECONDS
    while sink.active():
        request = pb.GetTaskStatusRequest(task_id=sink.task_id, after_sequence=sink.resume_after(), from_start=True)
        try:
            async for response in stub.StreamTaskStatus(request):
                update = _convert.update_from_pb(response.result)
                sink.deliver(update)
                silent_since, refusals, backoff = None, 0, _FIRST_BACKOFF_SECONDS
                if not sink.active():
                    return
                if update.is_terminal and update.attempt and update.attempt != sink.attempt:
                    # The worker's log of the task ended with another attempt's outcome: ours is not there.
                    sink.lost(f"the worker holds attempt {update.attempt} of the task, not attempt {sink.attempt}")
                    return
        except aio.AioRpcError as error:
            code = error.code()
            if code is grpc.StatusCode.NOT_FOUND:
                sink.lost("the worker no longer knows the task (it restarted, or forgot it)")
                return
            if code is grpc.StatusCode.OUT_OF_RANGE:  # it has the task, but another log of it: not ours
                sink.lost(f"the worker's log of the task does not match: {error.details()}")
                return
            if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                sink.lost(f"status stream failed: {code.name}: {error.details()}")
                return
        if not sink.active():
            return
        # The stream broke (or ended early). Is anybody still there?
        verdict, detail = await reach()
        if verdict is Reach.ANSWERED:
            silent_since, refusals = None, 0
        elif verdict is Reach.REFUSED:
            refusals += 1
            if refusals >= REFUSALS_BEFORE_LOST:
                sink.lost(f"the worker is gone: its address turns connections away ({detail})")
                return
        elif verdict is Reach.NOT_A_WORKER:
            sink.lost(f"the address no longer serves a worker ({detail})")
            return
        else:
            silent_since = silent_since if silent_since is not None else clock.now()
            if clock.now() - silent_since > RECONNECT_WINDOW_SECONDS:
                sink.lost(f"the worker has not answered for {RECONNECT_WINDOW_SECONDS:g}s ({detail})")
                return
        await clock.sleep(backoff)
        backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
