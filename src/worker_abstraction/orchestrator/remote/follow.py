"""Following a remote orchestrator's tasks in the background, for `RemoteOrchestrator`.

`Followers` holds the background tasks that follow tasks when there is no session: one WatchTask stream
per task (`follow`, resumed from the last update seen while the daemon comes back), and the tasks that
carry a broken session's tasks over to a new session, or to WatchTask (`resume`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from worker_abstraction import _convert, _rpc
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.errors import WorkerAbstractionError
from worker_abstraction.orchestrator.core.state import TaskState
from worker_abstraction.orchestrator.edge.follow import RECONNECT_WINDOW_SECONDS
from worker_abstraction.orchestrator.remote.session import Followed, RemoteSession, observe

_RESUME_BACKOFF_SECONDS = 0.2


class Followers:
    """The background tasks following a remote orchestrator's tasks.

    Args:
        stub: the daemon's OrchestratorService stub.
        unavailable: makes the error for a daemon that cannot be reached.
        open_session: the session stream, or None: use the unary calls.
        unary_only: whether the daemon has no sessions (an older one).
    """

    def __init__(
        self,
        stub: Any,
        unavailable: Callable[[str], WorkerAbstractionError],
        open_session: Callable[[], Awaitable[RemoteSession | None]],
        unary_only: Callable[[], bool],
    ) -> None:
        self._stub = stub
        self._unavailable = unavailable
        self._open_session = open_session
        self._unary_only = unary_only
        self._tasks: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        for follower in list(self._tasks):
            follower.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def resume(self, followed: Followed) -> None:
        """The session broke: follow its tasks again on a new one, from where each got."""
        resumer = asyncio.get_running_loop().create_task(self._follow_again(followed), name="resume-session")
        self._tasks.add(resumer)
        resumer.add_done_callback(self._tasks.discard)

    async def _follow_again(self, followed: Followed) -> None:
        loop = asyncio.get_running_loop()
        given_up_at = loop.time() + RECONNECT_WINDOW_SECONDS
        while loop.time() < given_up_at:
            session = await self._open_session()
            if session is not None:
                for state, seen in followed:
                    if not state.done():
                        session.follow(state, seen)
                return
            if self._unary_only():
                for state, _ in followed:
                    self.follow(state)
                return
            await asyncio.sleep(_RESUME_BACKOFF_SECONDS)
        for state, _ in followed:
            state.lose_track(self._unavailable(f"unreachable for {RECONNECT_WINDOW_SECONDS:g}s; watch it again"))

    def follow(self, state: TaskState) -> None:
        """Follow a task over WatchTask until it ends (or the daemon stays away too long)."""
        follower = asyncio.get_running_loop().create_task(self._watch(state), name=f"watch-{state.task_id}")
        self._tasks.add(follower)
        follower.add_done_callback(self._tasks.discard)

    async def _watch(self, state: TaskState) -> None:
        loop = asyncio.get_running_loop()
        silent_since: float | None = None
        seen = 0  # updates received: the daemon numbers WatchTask updates by their position
        while not state.done():
            request = pb.WatchTaskRequest(task_id=state.task_id, after_sequence=seen)
            try:
                async for message in self._stub.WatchTask(request):
                    silent_since = None
                    seen = max(seen, message.sequence)
                    observe(state, _convert.update_from_pb(message))
            except aio.AioRpcError as error:
                if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    state.lose_track(_rpc.error_from(error, self._unavailable))
                    return
            if state.done():
                return
            silent_since = silent_since if silent_since is not None else loop.time()
            if loop.time() - silent_since > RECONNECT_WINDOW_SECONDS:
                state.lose_track(self._unavailable(f"unreachable for {RECONNECT_WINDOW_SECONDS:g}s; watch it again"))
                return
            await asyncio.sleep(_RESUME_BACKOFF_SECONDS)
