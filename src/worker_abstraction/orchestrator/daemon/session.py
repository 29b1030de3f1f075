"""The daemon's end of one OpenSession stream: a caller's submissions in, acks and task updates out, batched.

Everything produced between two writes goes out in one message, so under load one message carries many
acks and updates. While the caller is submitting, updates of tasks older than its latest submission wait
for the next ack to travel with it (at most UPDATE_HOLD_SECONDS): a caller submitting one task after another
is not sent a message of its own for each earlier task's result. Submissions are accepted concurrently
(their store writes share transactions) up to a bound, past which the session stops reading: a flood slows
its own sender, not the daemon. Each task the session submitted or watches has its updates pushed as they
happen, numbered as WatchTask numbers them, without a coroutine per task.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable

from worker_abstraction import _convert, _rpc, auth, limits
from worker_abstraction._convert import bounds
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.codec import short
from worker_abstraction.errors import (
    InvalidParametersError,
    InvalidRequestError,
    TaskNotFoundError,
    WorkerAbstractionError,
)
from worker_abstraction.options import MAX_ID_LENGTH
from worker_abstraction.orchestrator.core.engine import Engine
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Acceptance
from worker_abstraction.orchestrator.daemon import callers
from worker_abstraction.types import TaskUpdate

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT = 1024  # submissions of one session being accepted at once
# Past this many bytes of updates waiting for the caller, the tasks' followers pause: they push nothing more
# and are caught up from their tasks' own updates (`TaskState`, bounded) as the caller reads. A slow reader
# of a streaming task costs the daemon this much, not the stream.
PAUSE_BYTES = 64 * 1024
_UPDATE_BYTES = 64  # what an update costs besides its output and chunk (an estimate, for MAX_BACKLOG_BYTES)
# Updates waiting for a caller that stopped reading, and those its paused followers owe it: past this many bytes
# the session is closed (the caller follows its tasks again when it reconnects) rather than the daemon keeping
# ever more tasks' updates for it.
MAX_BACKLOG_BYTES = 64 * 2**20
MAX_WATCHED = 1_000_000  # tasks one session follows at once
# Updates of tasks older than the caller's latest submission wait this long at most for the next ack, while
# the caller is submitting (its latest submission is at most SUBMITTING_SECONDS old) and they are under
# HOLD_MAX_BYTES; an update of the latest task (the one a caller running tasks one after another awaits)
# never waits, nor does one on a session that only watches.
UPDATE_HOLD_SECONDS = 0.002
SUBMITTING_SECONDS = 0.01
HOLD_MAX_BYTES = 2**16


class CallerSession:
    """One open session."""

    def __init__(self, engine: Engine, *, stop: Callable[[str], Awaitable[None]] | None = None) -> None:
        """`stop(reason)` ends the call with RESOURCE_EXHAUSTED, even while a write waits for the caller."""
        self._engine = engine
        self._stop = stop
        # The next message, filled in place as acks and updates are made (none is made and then copied in).
        self._next = pb.SessionResponse()
        self._wake = asyncio.Event()
        self._stops: dict[str, _Follower] = {}  # task id -> what follows it
        self._paused: dict[str, _Follower] = {}  # followers waiting for the caller to read (see PAUSE_BYTES)
        self._owed = 0  # bytes (estimated) of the updates the paused followers have not pushed yet
        self._in_flight = 0  # submissions being accepted (at most MAX_IN_FLIGHT)
        self._room = asyncio.Event()  # set when one ends
        self._backlog = 0  # bytes of updates made since the last write began
        self._stopping: asyncio.Future[None] | None = None
        self._closed = False  # the stream ended: acceptances stored since are not followed
        self._latest = ""  # the task of the latest ack
        self._submitted_at = -math.inf  # when the latest submissions were read (the loop's clock)
        self._hold: asyncio.TimerHandle | None = None  # ends the updates' wait for an ack
        self._held_enough = False  # the wait ended: the updates go now

    async def serve(self, requests: AsyncIterator[pb.SessionRequest]) -> AsyncIterator[pb.SessionResponse]:
        reader = asyncio.create_task(self._read(requests), name="session-reader")
        try:
            yield pb.SessionResponse()  # ready: tells the caller the session exists
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._next.acks or self._next.updates:
                    if self._waits(reader.done()):
                        continue
                    self._end_hold()
                    message, backlog = self._next, self._backlog
                    self._next, self._backlog = pb.SessionResponse(), 0
                    budget = limits.payload_limit()
                    if backlog <= budget:
                        yield message
                    else:
                        # Large outputs go in messages of their own: together they would pass the size limit.
                        for number, run in enumerate(_rpc.split_by_size(list(message.updates), budget)):
                            yield pb.SessionResponse(acks=message.acks if number == 0 else (), updates=run)
                    if self._paused:  # the caller read: the paused followers go on
                        self._catch_up()
                    continue
                if reader.done() and (_failed(reader) or (not self._in_flight and not self._stops)):
                    # A reader error (bytes that were not a message) ends the stream at once, with its status;
                    # the caller follows its tasks again as after any break.
                    reader.result()
                    return
        finally:
            self._closed = True
            self._end_hold()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            for follower in self._stops.values():
                follower.cancel()
            self._stops.clear()
            self._paused.clear()

    def _waits(self, reader_done: bool) -> bool:
        """Whether the updates made so far wait for the next ack (see UPDATE_HOLD_SECONDS)."""
        if self._held_enough or self._next.acks or reader_done or self._backlog > HOLD_MAX_BYTES:
            return False
        latest = self._latest
        if any(update.task_id == latest for update in self._next.updates):
            return False
        if self._hold is None:
            loop = asyncio.get_running_loop()
            if loop.time() - self._submitted_at > SUBMITTING_SECONDS:
                return False
            self._hold = loop.call_later(UPDATE_HOLD_SECONDS, self._hold_ended)
        return True

    def _hold_ended(self) -> None:
        self._hold, self._held_enough = None, True
        self._wake.set()

    def _end_hold(self) -> None:
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        self._held_enough = False

    async def _read(self, requests: AsyncIterator[pb.SessionRequest]) -> None:
        try:
            async for request in requests:
                if not (request.submits or request.watches or request.unwatch):
                    # Nothing this daemon can use (an empty message, or only fields of a newer contract): said
                    # at once, so a caller never waits for an answer that is not coming.
                    self._send_ack(pb.SessionAck(error=_convert.error_to_pb(_NOTHING_TO_DO)))
                    continue
                for submit in request.submits:
                    await auth.pace()
                    while self._in_flight >= MAX_IN_FLIGHT:
                        self._room.clear()
                        await self._room.wait()
                    self._in_flight += 1
                    self._submit(submit)
                if request.submits:
                    self._submitted_at = asyncio.get_running_loop().time()
                    self._engine.flush()  # the message's acceptances stored now, and their acks written a turn sooner
                for watch in request.watches:
                    await auth.pace()
                    await self._watch(watch)
                for task_id in request.unwatch:
                    follower = self._stops.pop(task_id, None)
                    if follower is not None:
                        follower.cancel()
                    else:  # (already ended, or never followed here: told, so the caller is not left guessing)
                        error = TaskNotFoundError(short(task_id), "this session's followed tasks")
                        self._send_ack(
                            pb.SessionAck(task_id=task_id[:MAX_ID_LENGTH], error=_convert.error_to_pb(error))
                        )
        finally:
            self._wake.set()

    def _settled(self) -> None:
        """A submission was answered."""
        self._in_flight -= 1
        self._room.set()
        self._wake.set()

    def _submit(self, submit: pb.SessionSubmit) -> None:
        """Accept a submission; it is answered once it is stored (or refused)."""
        then = functools.partial(self._stored, submit.request_id)
        try:
            callers.accept(self._engine, submit.submit, then)
        except Exception as error:
            then(None, error)

    def _stored(self, request_id: int, accepted: Acceptance | None, error: BaseException | None) -> None:
        self._settled()
        if accepted is not None:
            self._answer(request_id, accepted.handle, duplicate=accepted.duplicate)
        elif error is not None:
            self._refuse(request_id, error)

    def _answer(self, request_id: int, handle: AsyncTaskHandle, *, duplicate: bool) -> None:
        if self._closed:
            return  # (its caller resubmits, with its idempotency key if it has one)
        if self._stopping is None:  # (before its updates: the caller learns the task's id from the ack)
            answer = self._next.acks.add(request_id=request_id).response
            answer.task_id, answer.duplicate = handle.task_id, duplicate
            answer.worker_id, answer.worker_address = handle.worker_id, handle.worker_address
            self._latest = handle.task_id
            self._wake.set()
        self._follow(handle, 0)

    def _refuse(self, request_id: int, error: BaseException) -> None:
        ack = pb.SessionAck(request_id=request_id)
        if isinstance(error, WorkerAbstractionError):
            ack.error.CopyFrom(_convert.error_to_pb(error))
        else:
            logger.error("a session submission failed", exc_info=error)
            ack.error.CopyFrom(_convert.internal_error_to_pb("internal error accepting the task; the daemon logged it"))
        self._send_ack(ack)

    async def _watch(self, watch: pb.WatchTaskRequest) -> None:
        """Follow one more task; a watch that cannot be followed is refused in an ack of its own (request_id
        0, its task id), and the session goes on."""
        try:
            problems = [] if watch.task_id else ["task_id is empty; name the task to watch"]
            if len(watch.task_id) > MAX_ID_LENGTH:
                problems.append(f"task_id may be at most {MAX_ID_LENGTH} characters, got {short(watch.task_id)}")
            problems += bounds.problems(watch)
            if problems:
                raise InvalidRequestError(problems)
            if len(self._stops) >= MAX_WATCHED:
                raise InvalidParametersError([f"a session follows at most {MAX_WATCHED} tasks at once"])
            handle = await callers.watch(self._engine, watch.task_id)
            self._follow(handle, watch.after_sequence)
        except WorkerAbstractionError as error:
            self._send_ack(pb.SessionAck(task_id=watch.task_id[:MAX_ID_LENGTH], error=_convert.error_to_pb(error)))
        except Exception:
            logger.exception("a session watch failed")
            internal = _convert.internal_error_to_pb("internal error following the task; the daemon logged it")
            self._send_ack(pb.SessionAck(task_id=watch.task_id[:MAX_ID_LENGTH], error=internal))

    def _follow(self, handle: AsyncTaskHandle, after: int) -> None:
        task_id = handle.task_id
        previous = self._stops.pop(task_id, None)
        if previous is not None:
            previous.cancel()
        follower = _Follower(self, handle, after)
        handle.subscribe(follower)
        if not follower.ended:  # (a finished task's updates were all pushed during subscribe)
            self._stops[task_id] = follower

    def _push(self, update: TaskUpdate, sequence: int) -> None:
        if self._stopping is not None:
            return  # the session is over: its caller follows its tasks again when it comes back
        message = self._next.updates.add()
        _convert.fill_update(message, update)
        message.sequence = sequence
        self._wake.set()
        self._backlog += message.ByteSize()
        self._check_backlog()

    def owe(self, update: TaskUpdate, owed: bool) -> None:
        """Count an update a paused follower owes the caller (`owed`), or one it has now pushed (not `owed`)."""
        cost = len(update.output_json) + (update.chunk.size if update.chunk is not None else 0) + _UPDATE_BYTES
        self._owed = self._owed + cost if owed else max(0, self._owed - cost)
        if owed:
            self._check_backlog()

    def _check_backlog(self) -> None:
        """Past MAX_BACKLOG_BYTES waiting or owed, the caller has stopped reading: the session ends."""
        if self._backlog + self._owed > MAX_BACKLOG_BYTES and self._stop is not None and self._stopping is None:
            reason = (
                f"the caller stopped reading: {len(self._next.updates)} updates ({self._backlog:,} bytes) waited, "
                f"and {self._owed:,} bytes more were owed; follow the tasks again"
            )
            logger.warning("session closed: %s", reason)
            self._stopping = asyncio.ensure_future(self._stop(reason))  # (the writer may wait on the caller)
            self._stopping.add_done_callback(_quiet)
            self._next = pb.SessionResponse()  # what waited is dropped, and nothing more is kept
            for follower in self._stops.values():
                follower.cancel()
            self._stops.clear()
            self._paused.clear()

    def _catch_up(self) -> None:
        """Push the paused followers' updates from their tasks' own, while the caller keeps up."""
        while self._paused and self._backlog <= PAUSE_BYTES and self._stopping is None:
            task_id, follower = next(iter(self._paused.items()))
            updates = follower.handle.updates
            while 0 <= follower.behind < len(updates) and self._backlog <= PAUSE_BYTES:
                follower.behind += 1
                update = updates[follower.behind - 1]
                self.owe(update, False)
                follower.deliver(follower.behind, update)
            if follower.behind < 0 or follower.behind >= len(updates):  # (ended, or caught up: live again)
                self._paused.pop(task_id, None)
                follower.behind = -1

    def _ended(self, follower: _Follower) -> None:
        if self._stops.get(follower.task_id) is follower:
            del self._stops[follower.task_id]
        follower.cancel()

    def _send_ack(self, ack: pb.SessionAck) -> None:
        if self._stopping is not None:
            return
        self._next.acks.append(ack)
        self._wake.set()


_NOTHING_TO_DO = InvalidRequestError(["a session message must carry submits, watches or unwatch; this one had none"])


def _failed(reader: asyncio.Task[None]) -> bool:
    return not reader.cancelled() and reader.exception() is not None


def _quiet(stopping: asyncio.Future[None]) -> None:
    if not stopping.cancelled():
        stopping.exception()  # (the abort's own AbortError: the call has ended, as wanted)


class _Follower:
    """Pushes one task's updates into its session's next message, numbered as WatchTask numbers them.

    An object with slots rather than a closure: the daemon holds one per task its callers follow, queued
    ones included, and this is a third of the size.
    """

    __slots__ = ("after", "behind", "ended", "handle", "resumed", "session")

    def __init__(self, session: CallerSession, handle: AsyncTaskHandle, after: int) -> None:
        self.session = session
        self.handle = handle
        self.after = after  # the caller has seen the updates up to this position
        self.resumed = handle.resumed
        self.ended = False
        self.behind = -1  # paused (see PAUSE_BYTES): the last position pushed; -1: live

    @property
    def task_id(self) -> str:
        return self.handle.task_id

    def __call__(self, position: int, update: TaskUpdate) -> None:
        session = self.session
        if self.behind >= 0:
            session.owe(update, True)  # paused: the session catches it up from the task's updates
            return
        if session._backlog > PAUSE_BYTES and not self.ended:
            self.behind = position - 1
            session._paused[self.task_id] = self
            session.owe(update, True)
            return
        self.deliver(position, update)

    def deliver(self, position: int, update: TaskUpdate) -> None:
        sequence = callers.sequence_of(position, self.after, resumed=self.resumed, terminal=update.is_terminal)
        if sequence is None:
            return  # seen already
        self.session._push(update, sequence)
        if update.is_terminal:
            self.ended = True
            self.session._ended(self)

    def cancel(self) -> None:
        self.handle.unsubscribe(self)
        if self.session._paused.get(self.task_id) is self:
            del self.session._paused[self.task_id]
