"""AsyncTaskHandle: one dispatched task, its updates as they arrive, and its result.

The handle itself is passive: updates are delivered to it by whatever carries them (the task channel, or
a StreamTaskStatus follower), and it keeps its own deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from worker_abstraction import lifecycle
from worker_abstraction.errors import (
    TaskCanceledError,
    TaskError,
    TaskFailedError,
    TaskRejectedError,
    TaskTimeoutError,
)
from worker_abstraction.types import Attempt, TaskStatus, TaskUpdate

LOST = "wa-lost"  # metadata marking a failure the orchestrator inferred (worker gone), not one it was told
ERROR_KEY = "wa-error"  # metadata naming the error type of a failure the orchestrator decided itself

# The worker enforces the timeout itself; the orchestrator's own deadline comes a little later, so the
# worker's FAILED update wins when it can, and a silent worker still cannot hold the caller forever.
DEADLINE_SLACK_SECONDS = 2.0


class AsyncTaskHandle:
    """A task that a worker accepted: which worker has it, its updates, and its outcome.

    Iterate it (`async for update in handle`) to see every update from the first one on, ending with the
    terminal one; iterating again replays them. `await handle.result()` returns the decoded output.
    While the task waits in the orchestrator's queue its status is PENDING and `worker_id` is empty.
    Handles are made by the orchestrator.
    """

    def __init__(
        self,
        *,
        task_id: str,
        capability: str,
        params: Mapping[str, Any],
        timeout_seconds: float,
        on_done: Callable[[AsyncTaskHandle], None] | None = None,
    ) -> None:
        self.task_id = task_id
        self.capability = capability
        self.params = params
        self.worker_id = ""
        self.worker_address = ""
        self.timeout_seconds = timeout_seconds
        self.updates: list[TaskUpdate] = []
        self.attempts: list[Attempt] = []  # every dispatch, with its worker, times and outcome
        self.attempt = 0  # the current attempt's number; updates of other attempts are fenced off
        self.stale_updates = 0  # updates that arrived from a superseded attempt (a "zombie" worker)
        self.illegal_updates = 0  # updates that would break the lifecycle table (see worker_abstraction.lifecycle)
        self.last_sequence = 0
        self.rejection = ""
        self._changed: asyncio.Future[None] | None = None
        self._done = asyncio.get_running_loop().create_future()
        self._timed_out = False
        self._queue_timeout: float | None = None  # set when the task expired waiting for a worker
        self._on_done = on_done
        self._deadline: asyncio.TimerHandle | None = None
        self.follower: asyncio.Task[None] | None = None
        self.canceller: Callable[[AsyncTaskHandle, str], Awaitable[bool]] | None = None
        # Called with a FAILED update of the current attempt; True means "retried", and the task goes on.
        self.retrier: Callable[[AsyncTaskHandle, TaskUpdate], bool] | None = None
        self.on_silent_worker: Callable[[str], None] | None = None  # told of a worker that missed a deadline

    @property
    def status(self) -> TaskStatus:
        """The latest known status (PENDING until the first update arrives)."""
        return self.updates[-1].status if self.updates else TaskStatus.PENDING

    def done(self) -> bool:
        return self._done.done()

    async def __aiter__(self) -> AsyncIterator[TaskUpdate]:
        position = 0
        while True:
            while position < len(self.updates):
                position += 1
                yield self.updates[position - 1]
            if self._done.done():
                self._raise_if_timed_out()
                return
            if self._changed is None:
                self._changed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._changed)

    async def wait(self, timeout_seconds: float | None = None) -> TaskUpdate:
        """Wait for the terminal update and return it (without raising for FAILED / CANCELED).

        Raises:
            TaskTimeoutError: the task did not finish in time.
        """
        if not self._done.done():
            try:
                async with asyncio.timeout(timeout_seconds):
                    await asyncio.shield(self._done)
            except TimeoutError:
                raise TaskTimeoutError(self.task_id, timeout_seconds or 0.0) from None
        self._raise_if_timed_out()
        if self.rejection:
            raise TaskRejectedError(self.task_id, self.rejection)
        if not self.updates or not self.updates[-1].is_terminal:
            raise TaskError(self.task_id, f"stopped following task {self.task_id} before it finished")
        return self.updates[-1]

    async def cancel(self, reason: str = "") -> bool:
        """Cancel the task: a queued one never runs; a running one is asked to stop, then stopped.

        The task ends CANCELED (`result()` raises TaskCanceledError) unless it finished first.

        Returns:
            False when the task had already finished, True otherwise.
        """
        if self.done() or self.canceller is None:
            return False
        return await self.canceller(self, reason or "canceled by the caller")

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

    # ---- used by the orchestrator's scheduler and carriers -------------------------------------------

    def assign(self, worker_id: str, worker_address: str, attempt: int = 0) -> None:
        """The task was handed to a worker (or taken back, with empty values): remember which, and run the
        execution deadline only while a worker has it."""
        self.worker_id, self.worker_address = worker_id, worker_address
        if worker_id and attempt:
            if self.attempts and self.attempts[-1].number == attempt:
                self.attempts.pop()  # the same attempt, handed to another worker before it started
            self.attempt, self.last_sequence = attempt, 0
            self.attempts.append(Attempt(number=attempt, worker_id=worker_id, started_at=datetime.now(UTC)))
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if worker_id and self.timeout_seconds > 0:
            self._deadline = asyncio.get_running_loop().call_later(
                self.timeout_seconds + DEADLINE_SLACK_SECONDS, self._expire
            )

    def reject(self, reason: str) -> None:
        """A worker refused the task for good (e.g. invalid for it); `result()` raises TaskRejectedError."""
        self.rejection = reason
        self._conclude(reason, TaskRejectedError.__name__)

    def add_done_callback(self, callback: Callable[[AsyncTaskHandle], None]) -> None:
        self._done.add_done_callback(lambda _: callback(self))

    def deliver(self, update: TaskUpdate) -> None:
        """Record an update; a repeated, out-of-date or superseded one is ignored."""
        if self._done.done():
            return
        if update.attempt and self.attempt and update.attempt != self.attempt:
            self.stale_updates += 1  # fenced: an attempt we gave up on still talks
            return
        # Seed workers do not number updates (sequence 0); ours never repeat one after a resume.
        if update.sequence:
            if update.sequence <= self.last_sequence:
                return
            self.last_sequence = update.sequence
        if not lifecycle.allowed(self.status if self.updates else TaskStatus.UNKNOWN, update.status):
            self.illegal_updates += 1
            return
        if update.is_terminal:
            self._end_attempt(update)
            failed_attempt = self.attempt  # the retrier moves the handle on to the next one
            if update.status is TaskStatus.FAILED and self.retrier is not None and self.retrier(self, update):
                self.updates.append(
                    TaskUpdate(
                        task_id=self.task_id,
                        status=TaskStatus.PENDING,
                        error_message=f"attempt {failed_attempt} failed, retrying: {update.error_message}",
                        worker_id=update.worker_id,
                        attempt=update.attempt,
                        metadata={"retry": "scheduled"},
                    )
                )
                self._notify()
                return
        self.updates.append(update)
        self._notify()
        if update.is_terminal:
            self.finish()

    def lost(self, message: str) -> None:
        """The current attempt's outcome cannot be learnt (worker gone): it failed, for infrastructure reasons."""
        self.deliver(
            TaskUpdate(
                task_id=self.task_id,
                status=TaskStatus.FAILED,
                error_message=message,
                worker_id=self.worker_id,
                attempt=self.attempt,
                metadata={LOST: "1"},
            )
        )

    def _end_attempt(self, update: TaskUpdate) -> None:
        if self.attempts and self.attempts[-1].ended_at is None:
            self.attempts[-1] = replace(
                self.attempts[-1], ended_at=datetime.now(UTC), status=update.status, error_message=update.error_message
            )

    def finish(self) -> None:
        if self._done.done():
            return
        self._done.set_result(None)
        if self._deadline is not None:
            self._deadline.cancel()
        if self.follower is not None and self.follower is not asyncio.current_task():
            self.follower.cancel()
        self._notify()
        if self._on_done is not None:
            self._on_done(self)

    def _raise_if_timed_out(self) -> None:
        if self._queue_timeout is not None:
            raise TaskTimeoutError(self.task_id, self._queue_timeout, in_queue=True)
        if self._timed_out:
            raise TaskTimeoutError(self.task_id, self.timeout_seconds)

    def expire_in_queue(self, waited_seconds: float) -> None:
        """No worker took the task in time; `result()` raises TaskTimeoutError (in_queue=True)."""
        self._queue_timeout = waited_seconds
        error = TaskTimeoutError(self.task_id, waited_seconds, in_queue=True)
        self._conclude(f"DeadlineExceeded: {error}", TaskTimeoutError.__name__)

    def _expire(self) -> None:
        # The worker should have ended the task at its deadline and said nothing: it may be a zombie.
        self._timed_out = True
        error = TaskTimeoutError(self.task_id, self.timeout_seconds)
        self._conclude(f"DeadlineExceeded: {error} (worker {self.worker_id} went silent)", TaskTimeoutError.__name__)
        if self.on_silent_worker is not None and self.worker_id:
            self.on_silent_worker(self.worker_id)

    def _conclude(self, message: str, error_type: str) -> None:
        """End the task FAILED for a reason the orchestrator decided (not retried): one recorded final update."""
        if self._done.done():
            return
        final = TaskUpdate(
            task_id=self.task_id,
            status=TaskStatus.FAILED,
            error_message=message,
            worker_id=self.worker_id,
            attempt=self.attempt,
            timestamp_ns=time.time_ns(),
            metadata={ERROR_KEY: error_type},
        )
        self._end_attempt(final)
        self.updates.append(final)
        self.finish()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set_result(None)
            self._changed = None
