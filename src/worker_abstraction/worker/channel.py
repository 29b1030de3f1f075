"""The worker's end of the task channel (the fast path): many tasks over one stream, updates batched."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from worker_abstraction import _rpc, limits
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.exchanges import SUSPENDED
from worker_abstraction.worker.tasks import TaskRecord

Accept = Callable[[pb.Task], tuple[pb.ExecuteTaskResponse, TaskRecord | None]]


class ChannelSession:
    """One open channel: takes tasks from the request stream, returns acks and updates in batches.

    Everything produced between two writes goes out in one message, so under load one message carries
    many acks and updates, and a quick task's whole life usually fits in one.
    """

    def __init__(self, accept: Accept) -> None:
        self._accept = accept
        self._acks: list[pb.ExecuteTaskResponse] = []
        self._updates: list[pb.TaskResult] = []
        self._open: dict[str, TaskRecord] = {}
        self._wake = asyncio.Event()

    async def serve(self, requests: AsyncIterator[pb.TaskChannelRequest]) -> AsyncIterator[pb.TaskChannelResponse]:
        reader = asyncio.create_task(self._read(requests), name="task-channel-reader")
        try:
            yield pb.TaskChannelResponse()  # ready: tells the orchestrator the fast path exists
            while True:
                await self._wake.wait()
                # One more turn of the loop: tasks just taken start, and a quick one ends, before the batch
                # is written, so its PENDING and RUNNING need not travel.
                await asyncio.sleep(0)
                self._wake.clear()
                if self._acks or self._updates:
                    acks, updates = self._acks, self._updates
                    self._acks, self._updates = [], []
                    # Large outputs go in messages of their own: together they would pass the size limit.
                    for number, run in enumerate(_rpc.split_by_size(updates, limits.payload_limit())):
                        yield pb.TaskChannelResponse(acks=acks if number == 0 else (), updates=run)
                if reader.done() and (not self._open or (not reader.cancelled() and reader.exception() is not None)):
                    # A reader error (bytes that were not a message) ends the channel at once, with its status;
                    # the orchestrator resumes its open tasks over StreamTaskStatus.
                    reader.result()
                    return
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            for record in self._open.values():  # the orchestrator resumes these over StreamTaskStatus
                record.listener = None

    async def _read(self, requests: AsyncIterator[pb.TaskChannelRequest]) -> None:
        try:
            async for request in requests:
                if not request.tasks:  # (nothing to take: said at once, so the sender never waits for an ack)
                    self._acks.append(_NO_TASKS)
                    self._wake.set()
                for task in request.tasks:
                    self._take(task)
        finally:
            self._wake.set()

    def _take(self, task: pb.Task) -> None:
        response, record = self._accept(task)
        self._acks.append(response)
        if record is not None and record.task_id not in self._open:  # (already listening: nothing to add)
            self._updates.extend(record.log)  # what happened before we listened (at least PENDING)
            if not record.is_terminal:
                self._open[record.task_id] = record
                record.listener = self._on_update
        self._wake.set()

    def _on_update(self, update: pb.TaskResult) -> None:
        self._updates.append(update)
        self._wake.set()
        if update.status in _TERMINAL or (update.metadata and SUSPENDED in update.metadata):
            record = self._open.pop(update.task_id, None)
            if record is not None:
                record.listener = None


_NO_TASKS = pb.ExecuteTaskResponse(
    accepted=False,
    message="a TaskChannelRequest must carry tasks; this one had none",
    reject_reason=pb.REJECT_REASON_INVALID_TASK,
)
_TERMINAL = frozenset({pb.TASK_STATUS_COMPLETED, pb.TASK_STATUS_FAILED, pb.TASK_STATUS_CANCELED})
