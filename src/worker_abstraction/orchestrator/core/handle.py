"""AsyncTaskHandle: a read-only view of one task, plus `result()`, `cancel()` and iteration.

A handle only reads: the task's life is owned by the engine (embedded) or by the daemon, and the handle
asks its owner to cancel. The same handle class serves both, so code written against one works unchanged
against the other. Outcomes map to errors in one place, `result()`: a deadline is `TaskTimeoutError`
whether the worker or the orchestrator enforced it, a refusal is `TaskRejectedError`, and so on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from worker_abstraction import lifecycle
from worker_abstraction.errors import (
    ChunksDroppedError,
    TaskCanceledError,
    TaskFailedError,
    TaskNotWaitingError,
    TaskRejectedError,
    TaskTimeoutError,
)
from worker_abstraction.exchanges import InputAnswer, InputRequest, OutputChunk, answer_json
from worker_abstraction.lifecycle import INPUT_TIMEOUT
from worker_abstraction.orchestrator.core.state import TaskState
from worker_abstraction.types import Attempt, FailureOrigin, TaskStatus, TaskUpdate


class TaskOwner(Protocol):
    """Whoever runs the task behind a handle."""

    async def cancel(self, reason: str) -> bool: ...

    async def provide_input(self, value_json: str, *, request_id: str = "", answered_by: str = "") -> InputAnswer: ...


class AsyncTaskHandle:
    """A submitted task: which worker has it, its updates, its outcome.

    Iterate it (`async for update in handle`) to see every update from the first one on, ending with the
    terminal one; iterating again replays them. `await handle.result()` returns the decoded output.
    While the task waits in the queue its status is PENDING and `worker_id` is empty. Handles are made by
    the orchestrator.
    """

    __slots__ = ("_owner", "_state")

    def __init__(self, state: TaskState, owner: TaskOwner) -> None:
        self._state = state
        self._owner = owner

    @property
    def task_id(self) -> str:
        return self._state.task_id

    @property
    def capability(self) -> str:
        return self._state.capability

    @property
    def params(self) -> Mapping[str, Any]:
        return self._state.params

    @property
    def worker_id(self) -> str:
        """The worker running (or that last ran) the task; empty while it waits."""
        return self._state.worker_id

    @property
    def worker_address(self) -> str:
        return self._state.worker_address

    @property
    def status(self) -> TaskStatus:
        """The latest known status (PENDING until the first update arrives)."""
        return self._state.status

    @property
    def resumed(self) -> bool:
        """Its run here carries on one of an earlier daemon (or of this one before a restart)."""
        return self._state.resumed

    @property
    def updates(self) -> Sequence[TaskUpdate]:
        """Every update so far, in order."""
        return self._state.updates

    @property
    def attempts(self) -> Sequence[Attempt]:
        """Every dispatch of the task so far, with its worker, times and outcome."""
        return self._state.attempts

    @property
    def attempt(self) -> int:
        """The current attempt's number (0 before the first dispatch)."""
        return self._state.attempt

    @property
    def stale_updates(self) -> int:
        """Updates that arrived from an attempt given up on (a "zombie" worker) and were ignored."""
        return self._state.stale_updates

    def done(self) -> bool:
        """True once no more updates will come (the task ended, or the handle lost track of it)."""
        return self._state.done()

    def add_done_callback(self, callback: Callable[[AsyncTaskHandle], None]) -> None:
        """Call `callback(handle)` once the handle is done."""
        self._state.add_done_callback(lambda: callback(self))

    def subscribe(self, callback: Callable[[int, TaskUpdate], None], after: int = 0) -> None:
        """Call `callback(position, update)` for every update after position `after` (1-based), those already
        there at once, without a task per subscriber, until `unsubscribe(callback)` or the task's end."""
        self._state.listen(callback, after)

    def unsubscribe(self, callback: Callable[[int, TaskUpdate], None]) -> None:
        """Stop calling `callback` (a subscribe's)."""
        self._state.unlisten(callback)

    async def __aiter__(self) -> AsyncIterator[TaskUpdate]:
        position = 0
        state = self._state
        while True:
            while position < len(state.updates):
                position += 1
                yield state.updates[position - 1]
            if state.done():
                if state.broken is not None:
                    raise state.broken
                return
            await state.wait_changed()

    async def wait(self, timeout_seconds: float | None = None) -> TaskUpdate:
        """Wait for the terminal update and return it (without raising for FAILED / CANCELED).

        Raises:
            TaskTimeoutError: the task did not finish within `timeout_seconds`.
            OrchestratorUnavailableError: the handle lost contact with the daemon (`watch` it again).
        """
        state = self._state
        if not state.done() and timeout_seconds is None:
            await state.wait_done()
        elif not state.done():
            try:
                async with asyncio.timeout(timeout_seconds):
                    await state.wait_done()
            except TimeoutError:
                raise TaskTimeoutError(state.task_id, timeout_seconds or 0.0) from None
        final = state.final
        if final is None:
            assert state.broken is not None
            raise state.broken
        return final

    async def cancel(self, reason: str = "") -> bool:
        """Cancel the task: a queued one never runs; a running one is asked to stop, then stopped.

        The task ends CANCELED (`result()` raises TaskCanceledError) unless it finished first. A worker
        that cannot cancel (a seed-built one) is not waited for: the task ends CANCELED here at once and the
        worker's late result is ignored.

        Returns:
            False when the task had already finished, True otherwise.
        """
        if self._state.final is not None:
            return False
        return await self._owner.cancel(reason or "canceled by the caller")

    @property
    def input_request(self) -> InputRequest | None:
        """The question the task waits on now (None: it waits for no input): its id, prompt, schema, deadline."""
        updates = self._state.updates
        last = updates[-1] if updates else None
        return last.input_request if last is not None and last.status is TaskStatus.INPUT_REQUIRED else None

    async def input_requested(self, timeout_seconds: float | None = None, *, after: str = "") -> InputRequest:
        """Wait until the task asks for input, and return the question (at once if it waits on one now).
        `after`: the id of a question already answered: wait for another one (the next).

        Raises:
            TaskTimeoutError: no question within `timeout_seconds`.
            TaskError: the task ended first (as `result()` would raise; TaskNotWaitingError if it completed).
        """
        try:
            async with asyncio.timeout(timeout_seconds):
                while (request := self.input_request) is None or (after and request.request_id == after):
                    final = self._state.final
                    if final is not None:
                        if final.status is TaskStatus.COMPLETED:
                            raise TaskNotWaitingError(self.task_id, "completed without asking for input")
                        raise outcome_error(self._state, final)
                    if self._state.done():  # (no more updates: lost track of the task)
                        raise self._state.broken or TaskNotWaitingError(self.task_id, "is no longer followed")
                    await self._state.wait_changed()
        except TimeoutError:
            raise TaskTimeoutError(self.task_id, timeout_seconds or 0.0) from None
        return request

    async def provide_input(self, value: Any, *, request_id: str = "") -> InputAnswer:
        """Answer the question the task waits on with `value` (any JSON value), checked against its schema.

        Raises:
            InvalidAnswerError: the value breaks the schema (every problem listed); the task keeps waiting.
            TaskNotWaitingError: the task waits for no input (or for another question than `request_id`).
        """
        return await self._owner.provide_input(answer_json(value), request_id=request_id)

    async def stream(self, after: int = 0) -> AsyncIterator[OutputChunk]:
        """The task's streamed output (`ctx.emit`), chunk by chunk in order, from the one after chunk number
        `after` (0: from the first), as it comes, until the task ends. Resumable: a reader that stopped at
        chunk N goes on with `stream(after=N)`.

        Raises:
            ChunksDroppedError: chunks after `after` are no longer kept: the orchestrator keeps the latest
                `MAX_CHUNK_BYTES` of a task's chunks for readers that fall behind (`core.state`).
            OrchestratorUnavailableError: the handle lost contact with the daemon.
        """
        position = 0
        state = self._state
        while True:
            while position < len(state.updates):
                update = state.updates[position]
                position += 1
                chunk = update.chunk
                if chunk is None or chunk.index <= after:
                    continue
                if chunk.index > after + 1:  # (the oldest chunks of a long stream are not kept for ever)
                    raise ChunksDroppedError(self.task_id, after, chunk.index - 1)
                after = chunk.index
                yield chunk
            if state.done():
                if state.broken is not None:
                    raise state.broken
                return
            await state.wait_changed()

    async def result(self, timeout_seconds: float | None = None) -> Any:
        """The task's decoded output.

        Raises:
            TaskFailedError: the task ended FAILED (the worker's message is in `error_message`).
            TaskCanceledError: the task ended CANCELED.
            TaskTimeoutError: the task overran its execution timeout, waited too long in the queue
                (`in_queue`), or did not finish within `timeout_seconds`.
            TaskRejectedError: the worker refused the task (its reason is in `reason`).
            OrchestratorUnavailableError: the handle lost contact with the daemon.
        """
        final = await self.wait(timeout_seconds)
        if final.status is TaskStatus.COMPLETED:
            return final.output
        raise outcome_error(self._state, final)


def outcome_error(state: TaskState, final: TaskUpdate) -> Exception:
    """The error `result()` raises for a task that ended FAILED or CANCELED."""
    failure = final.failure
    if final.status is TaskStatus.CANCELED:
        return TaskCanceledError(state.task_id, final.error_message)
    if failure is not None and failure.origin is FailureOrigin.TIMEOUT and failure.type != INPUT_TIMEOUT:
        if failure.type == lifecycle.QUEUE_TIMEOUT:
            return TaskTimeoutError(state.task_id, state.queue_timeout_seconds or 0.0, in_queue=True)
        return TaskTimeoutError(state.task_id, state.timeout_seconds)
    if failure is not None and failure.origin is FailureOrigin.REJECTED:
        return TaskRejectedError(state.task_id, failure.message)
    return TaskFailedError(
        state.task_id, final.error_message or f"ended {final.status.name}", error_type=failure.type if failure else ""
    )
