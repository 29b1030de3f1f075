"""The relay: a task's updates from the replica that runs it to every replica that follows it.

When several daemons share tasks (see `stores/jetstream`), the replica running a task is often not the one
its caller is connected to. The runner publishes each update of its run to the update log
(`UpdatePublisher`); any replica makes a handle that reads them back (`followed_handle`), the same
`AsyncTaskHandle` a local run has, so sessions, WatchTask and `result()` work on it unchanged.

Updates are numbered as WatchTask numbers them. A replica that takes a task over from a dead one numbers
its run's updates after the last one the log kept (`base`), so the task's updates read as one stream
whichever replicas ran it. Updates are published one after the other, in order; `flushed()` waits until
every one so far is stored (the runner waits for it before it lets the task go, so a finished task's last
update is always in the log before anyone can take the task again). A runner whose hold on the task is
lost publishes nothing more: each update is published only while `alive()` says the hold lasts, and
`stop()` drops what is left.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Mapping
from typing import Any

from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle, TaskOwner
from worker_abstraction.orchestrator.core.state import TaskState
from worker_abstraction.orchestrator.remote.session import observe
from worker_abstraction.stores import serial
from worker_abstraction.stores.availability import raise_if_cancelled
from worker_abstraction.stores.jetstream.connection import NatsStoreError
from worker_abstraction.stores.jetstream.updates import UpdateLog
from worker_abstraction.types import TaskUpdate

logger = logging.getLogger(__name__)

PUBLISH_ATTEMPTS = 5  # tries per update while NATS does not answer (a leader election takes seconds)
_RETRY_PAUSE_SECONDS = 1.0
_MAX_FOLLOW_PAUSE_SECONDS = 5.0


class UpdatePublisher:
    """Publishes every update of a run's handle to the log, in order, numbered after `base`.

    Subscribe it to the handle: `handle.subscribe(UpdatePublisher(log, handle.task_id, base))`. With
    `alive`, each update is published only while it returns True (the runner's hold on the task lasts).
    """

    __slots__ = ("_alive", "_base", "_draining", "_log", "_pending", "failed", "stopped", "task_id")

    def __init__(self, log: UpdateLog, task_id: str, base: int = 0, *, alive: Callable[[], bool] | None = None) -> None:
        self._log = log
        self.task_id = task_id
        self._base = base
        self._alive = alive
        self._pending: collections.deque[tuple[int, bytes]] = collections.deque()
        self._draining: asyncio.Task[None] | None = None
        self.failed = 0  # updates the log never stored (NATS unreachable through every try)
        self.stopped = False  # the hold was lost: nothing more is published

    def stop(self) -> None:
        """Publish nothing more (the updates not yet published are dropped)."""
        self.stopped = True
        self._pending.clear()

    def __call__(self, position: int, update: TaskUpdate) -> None:
        if self.stopped:
            return
        sequence = self._base + position
        self._pending.append((sequence, serial.update_bytes(update, sequence=sequence)))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.ensure_future(self._drain())

    async def flushed(self) -> None:
        """Return once every update so far was stored (or given up on: see `failed`)."""
        while self._draining is not None and not self._draining.done():
            await asyncio.shield(self._draining)

    async def _drain(self) -> None:
        while self._pending:
            sequence, data = self._pending[0]
            for attempt in range(1, PUBLISH_ATTEMPTS + 1):
                if self._alive is not None and not self._alive():
                    self.stop()
                if self.stopped:
                    return  # (what is left was dropped)
                try:
                    await self._log.publish(self.task_id, sequence, data)
                    break
                except NatsStoreError as error:
                    if attempt == PUBLISH_ATTEMPTS:
                        self.failed += 1
                        logger.error("update %d of task %s was not published: %s", sequence, self.task_id, error)
                    else:
                        await asyncio.sleep(_RETRY_PAUSE_SECONDS)
            if self._pending:  # (emptied if it was stopped meanwhile)
                self._pending.popleft()


def followed_handle(
    log: UpdateLog,
    task_id: str,
    capability: str,
    params: Mapping[str, Any],
    owner: TaskOwner,
    *,
    after: int = 0,
    fresh: bool = False,
) -> tuple[AsyncTaskHandle, asyncio.Task[None]]:
    """A handle on a task another replica runs (or ran), fed from the log; and the task that feeds it.

    The feeding task ends with the task's terminal update (cancel it to stop following sooner). `fresh`:
    the task was accepted a moment ago and cannot have updates yet (see `UpdateLog.follow`): updates are
    kept from the moment this returns, so make the handle before the task can be taken. While the
    log cannot be read (NATS electing a leader, a connection moving to another server) it tries again,
    from the last update it had, every few seconds at most.
    """
    state = TaskState(task_id, capability, params)
    listening = log.listen(task_id)  # now: an update published before the feeding task runs is kept

    async def feed() -> None:
        seen, pause = after, _RETRY_PAUSE_SECONDS / 4
        first = fresh
        while not state.done():
            raise_if_cancelled()  # (a cancel the log's reads swallowed must still stop it)
            updates = log.follow(task_id, seen, fresh=first, listening=listening)
            first = False
            try:
                async for sequence, data in updates:
                    seen = sequence
                    observe(state, serial.update_of(data))
                    if state.done():
                        return
            except NatsStoreError as error:
                logger.warning("following task %s: %s; trying again", task_id, error)
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_FOLLOW_PAUSE_SECONDS)
            finally:
                await updates.aclose()

    feeding = asyncio.ensure_future(feed())
    feeding.add_done_callback(lambda _: log.unlisten(listening))
    return AsyncTaskHandle(state, owner), feeding
