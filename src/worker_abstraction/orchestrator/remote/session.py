"""The caller's end of one OpenSession stream: submissions out, acks and task updates in, batched.

Submissions made between two writes go out in one message. An ack creates the task's state before the
updates that follow it in the same message are routed, so none is missed. If the stream breaks, pending
submissions fail as OrchestratorUnavailableError (their fate is unknown: resubmit with the same
idempotency key) and the tasks being followed are handed back, with how far each got, to be followed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable

import grpc
from grpc import aio

from worker_abstraction import _convert, _rpc, limits
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.errors import WorkerAbstractionError
from worker_abstraction.orchestrator.core.state import TaskState
from worker_abstraction.types import TaskSpec, TaskStatus, TaskUpdate

logger = logging.getLogger(__name__)

_OPEN_TIMEOUT_SECONDS = 10.0

MakeState = Callable[[pb.SubmitTaskResponse], TaskState]
Followed = list[tuple[TaskState, int]]  # tasks and the last update position each has seen


class RemoteSession:
    """One open OpenSession stream to a daemon."""

    def __init__(
        self,
        stub: pb_grpc.OrchestratorServiceStub,
        unavailable: Callable[[str], WorkerAbstractionError],
        on_broken: Callable[[Followed], None],
    ) -> None:
        self._stub = stub
        self._unavailable = unavailable
        self._on_broken = on_broken
        self._call: aio.StreamStreamCall[pb.SessionRequest, pb.SessionResponse] | None = None
        self._numbers = itertools.count(1)
        # The next message, filled in place (a submission is written into it, not made and copied in twice).
        self._next = pb.SessionRequest()
        self._next_bytes = 0  # the encoded size of its submissions
        self._wake = asyncio.Event()
        self._pending: dict[int, tuple[asyncio.Future[TaskState], MakeState]] = {}
        self._routes: dict[str, TaskState] = {}
        self._seen: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.is_open = False
        self.unsupported = False

    async def open(self) -> bool:
        """Open the stream and wait for the daemon's ready message; False if it cannot be used."""
        self._call = self._stub.OpenSession()
        try:
            async with asyncio.timeout(_OPEN_TIMEOUT_SECONDS):
                ready = await self._call.read()
        except (aio.AioRpcError, TimeoutError) as error:
            self.unsupported = _rpc.code_of(error) is grpc.StatusCode.UNIMPLEMENTED
            self._call.cancel()
            return False
        if ready is _rpc.EOF:
            self.unsupported = True
            return False
        self.is_open = True
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="session-writer"),
            asyncio.create_task(self._read_loop(), name="session-reader"),
        ]
        return True

    async def submit(self, spec: TaskSpec, make_state: MakeState) -> TaskState:
        """Submit a task; its state (followed from here on) once the daemon accepted it.

        Raises:
            WorkerAbstractionError: the daemon refused it (the same class and fields as it raised), or the
                session broke before the answer (OrchestratorUnavailableError).
        """
        if not self.is_open:
            raise self._unavailable("the session is closed")
        number = next(self._numbers)
        accepted: asyncio.Future[TaskState] = asyncio.get_running_loop().create_future()
        self._pending[number] = (accepted, make_state)
        submission = self._next.submits.add(request_id=number)
        _convert.fill_submission(submission.submit, spec)
        self._next_bytes += submission.ByteSize()
        self._wake.set()
        return await accepted

    def following(self, task_id: str) -> TaskState | None:
        """The state of a task this session follows and that has not ended (None: none)."""
        state = self._routes.get(task_id)
        return state if state is not None and not state.done() else None

    def follow(self, state: TaskState, seen: int) -> None:
        """Follow a task this session did not submit (a watch, or one followed again after a break)."""
        self._routes[state.task_id] = state
        self._seen[state.task_id] = seen
        self._next.watches.add(task_id=state.task_id, after_sequence=seen)
        self._wake.set()

    async def aclose(self) -> None:
        self.is_open = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._call is not None:
            self._call.cancel()

    async def _write_loop(self) -> None:
        assert self._call is not None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._next.submits or self._next.watches:
                    message, size = self._next, self._next_bytes
                    self._next, self._next_bytes = pb.SessionRequest(), 0
                    budget = limits.payload_limit()
                    if size <= budget:
                        await self._call.write(message)
                        continue
                    # Large arguments go in messages of their own: together they would pass the size limit.
                    for number, run in enumerate(_rpc.split_by_size(list(message.submits), budget)):
                        watches = message.watches if number == 0 else ()
                        await self._call.write(pb.SessionRequest(submits=run, watches=watches))
        except (aio.AioRpcError, aio.UsageError, asyncio.InvalidStateError) as error:
            logger.debug("session: write failed: %s", error)
            self._broken()

    async def _read_loop(self) -> None:
        assert self._call is not None
        try:
            while isinstance(message := await self._call.read(), pb.SessionResponse):
                for ack in message.acks:
                    self._answer(ack)
                for result in message.updates:
                    state = self._routes.get(result.task_id)
                    if state is None:
                        continue
                    if result.sequence <= self._seen.get(result.task_id, 0) and result.status not in _TERMINAL:
                        continue  # already seen before a break
                    self._seen[result.task_id] = max(self._seen.get(result.task_id, 0), result.sequence)
                    observe(state, _convert.update_from_pb(result))
                    if state.done():
                        del self._routes[result.task_id]
                        self._seen.pop(result.task_id, None)
        except aio.AioRpcError as error:
            logger.debug("session broke: %s", error.code().name)
        finally:
            self._broken()

    def _answer(self, ack: pb.SessionAck) -> None:
        if not ack.request_id:  # a watch that failed
            state = self._routes.pop(ack.task_id, None)
            if state is not None:
                state.lose_track(_convert.error_from_pb(ack.error, self._unavailable))
            return
        waiting = self._pending.pop(ack.request_id, None)
        if waiting is None:
            return
        accepted, make_state = waiting
        if ack.HasField("error"):
            if not accepted.done():
                accepted.set_exception(_convert.error_from_pb(ack.error, self._unavailable))
            return
        state = self._routes.get(ack.response.task_id)
        if state is None:
            state = make_state(ack.response)
            self._routes[state.task_id] = state  # before this message's updates are routed
            self._seen[state.task_id] = 0
        # (else a duplicate of a task this session follows already: both handles share what it hears)
        if not accepted.done():
            accepted.set_result(state)

    def _broken(self) -> None:
        if not self.is_open:
            return
        self.is_open = False
        if self._call is not None:
            self._call.cancel()
        for accepted, _ in self._pending.values():
            if not accepted.done():
                accepted.set_exception(self._unavailable("the session broke before the daemon answered"))
        self._pending.clear()
        followed = [(state, self._seen.get(task_id, 0)) for task_id, state in self._routes.items()]
        self._routes.clear()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if followed:
            self._on_broken(followed)


_TERMINAL = frozenset({pb.TASK_STATUS_COMPLETED, pb.TASK_STATUS_FAILED, pb.TASK_STATUS_CANCELED})


def observe(state: TaskState, update: TaskUpdate) -> None:
    """Record an update the daemon streamed (it already fenced and ordered them): track its attempts too."""
    if update.attempt and update.worker_id and (update.attempt != state.attempt or not state.attempts):
        same_worker = update.worker_id == state.worker_id
        state.begin_attempt(update.attempt, update.worker_id, state.worker_address if same_worker else "")
    elif update.worker_id and update.worker_id != state.worker_id:
        state.worker_id = update.worker_id
    if update.status is TaskStatus.PENDING and update.metadata.get("retry"):
        state.end_attempt(TaskStatus.FAILED, update.error_message)
    state.append(update)
