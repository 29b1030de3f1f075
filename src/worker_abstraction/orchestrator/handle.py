"""AsyncTaskHandle: one dispatched task, its updates as they stream in, and its result."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from grpc import aio

from worker_abstraction import _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.errors import TaskCanceledError, TaskError, TaskFailedError, TaskTimeoutError
from worker_abstraction.types import TaskStatus, TaskUpdate

logger = logging.getLogger(__name__)

# How long to keep trying to reach a worker whose status stream broke before declaring the task lost.
_RECONNECT_WINDOW_SECONDS = 10.0


class AsyncTaskHandle:
    """A task that a worker accepted: which worker has it, its updates, and its outcome.

    Iterate it (`async for update in handle`) to see every update from the first one on, ending with the
    terminal one; iterating again replays them. `await handle.result()` returns the decoded output.
    """

    def __init__(
        self,
        *,
        task_id: str,
        capability: str,
        worker_id: str,
        worker_address: str,
        stub: pb_grpc.WorkerServiceStub,
        timeout_seconds: float,
        on_done: Callable[[AsyncTaskHandle], None],
    ) -> None:
        self.task_id = task_id
        self.capability = capability
        self.worker_id = worker_id
        self.worker_address = worker_address
        self.timeout_seconds = timeout_seconds
        self.updates: list[TaskUpdate] = []
        self._stub = stub
        self._changed = asyncio.Event()
        self._done = asyncio.Event()
        self._timed_out = False
        self._on_done = on_done
        self._follower = asyncio.create_task(self._follow(), name=f"follow-{task_id}")

    @property
    def status(self) -> TaskStatus:
        """The latest known status (PENDING until the first update arrives)."""
        return self.updates[-1].status if self.updates else TaskStatus.PENDING

    def done(self) -> bool:
        return self._done.is_set()

    async def __aiter__(self) -> AsyncIterator[TaskUpdate]:
        position = 0
        while True:
            while position < len(self.updates):
                position += 1
                yield self.updates[position - 1]
            if self._done.is_set():
                if self._timed_out:
                    raise TaskTimeoutError(self.task_id, self.timeout_seconds)
                return
            self._changed.clear()
            await self._changed.wait()

    async def wait(self, timeout_seconds: float | None = None) -> TaskUpdate:
        """Wait for the terminal update and return it (without raising for FAILED / CANCELED).

        Raises:
            TaskTimeoutError: the task did not finish in time.
        """
        try:
            async with asyncio.timeout(timeout_seconds):
                await self._done.wait()
        except TimeoutError:
            raise TaskTimeoutError(self.task_id, timeout_seconds or 0.0) from None
        if self._timed_out:
            raise TaskTimeoutError(self.task_id, self.timeout_seconds)
        if not self.updates or not self.updates[-1].is_terminal:
            raise TaskError(self.task_id, f"stopped following task {self.task_id} before it finished")
        return self.updates[-1]

    async def result(self, timeout_seconds: float | None = None) -> Any:
        """The task's decoded output.

        Raises:
            TaskFailedError: the task ended FAILED (the worker's message is in `error_message`).
            TaskCanceledError: the task ended CANCELED.
            TaskTimeoutError: the task did not finish in time.
        """
        final = await self.wait(timeout_seconds)
        if final.status is TaskStatus.COMPLETED:
            return final.output
        if final.status is TaskStatus.CANCELED:
            raise TaskCanceledError(self.task_id, final.error_message)
        raise TaskFailedError(self.task_id, final.error_message or f"ended {final.status.name}")

    def _publish(self, update: TaskUpdate) -> None:
        self.updates.append(update)
        self._changed.set()

    def _finish(self) -> None:
        self._done.set()
        self._changed.set()
        self._on_done(self)

    async def _follow(self) -> None:
        # The worker enforces the timeout itself; the orchestrator's own deadline is a little later, so
        # a silent worker cannot hold the caller forever.
        deadline = time.monotonic() + self.timeout_seconds + 2.0 if self.timeout_seconds > 0 else None
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                await self._stream_until_terminal()
        except TimeoutError:
            self._timed_out = True
        except Exception as error:  # never leave a caller waiting on a follower that died
            logger.exception("following task %s failed", self.task_id)
            self._publish(self._lost(f"orchestrator lost track of the task: {error}"))
        finally:
            self._finish()

    async def _stream_until_terminal(self) -> None:
        last_sequence = 0
        lost_since: float | None = None
        backoff = 0.05
        while True:
            call = self._stub.StreamTaskStatus(
                pb.GetTaskStatusRequest(task_id=self.task_id, after_sequence=last_sequence, from_start=True)
            )
            try:
                async for response in call:
                    update = _convert.update_from_pb(response.result)
                    # Seed workers do not number updates (sequence 0); ours never repeat one after a resume.
                    if update.sequence and update.sequence <= last_sequence:
                        continue
                    last_sequence = max(last_sequence, update.sequence)
                    lost_since, backoff = None, 0.05
                    self._publish(update)
                    if update.is_terminal:
                        return
            except aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.NOT_FOUND:
                    self._publish(self._lost(f"worker {self.worker_id} no longer knows the task"))
                    return
                if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    self._publish(self._lost(f"status stream failed: {error.code().name}: {error.details()}"))
                    return
            # The stream broke (or ended early): resume after the last update we saw.
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since > _RECONNECT_WINDOW_SECONDS:
                self._publish(self._lost(f"worker {self.worker_id} at {self.worker_address} is unreachable"))
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def _lost(self, message: str) -> TaskUpdate:
        return TaskUpdate(
            task_id=self.task_id, status=TaskStatus.FAILED, error_message=message, worker_id=self.worker_id
        )


def _loop_time(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())
