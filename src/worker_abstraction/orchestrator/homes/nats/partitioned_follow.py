"""How a `PartitionedHome` handle hears a task run elsewhere: its updates from the update log, and, when the log
says nothing, its document.

The daemon that runs a task publishes its last update only once its finished document is stored. If it dies
between the two, nobody publishes it: the document is finished, so no daemon takes the task on again. A
follower that heard only the log would wait for good. So a follower that hears nothing for `silence_seconds`,
and every follower after the home's connection to NATS came back (the updates published meanwhile never
reached its subscription), reads the task's document; if it is finished, the follower ends the handle from
the record in it (the run's own last update, numbered after the last one heard). While the task runs on, that
costs one KV read per quiet task every `silence_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle, TaskOwner
from worker_abstraction.orchestrator.core.state import TaskState
from worker_abstraction.orchestrator.remote.session import observe
from worker_abstraction.stores import serial
from worker_abstraction.stores.availability import Backoff, raise_if_cancelled
from worker_abstraction.stores.jetstream.connection import NatsStoreError
from worker_abstraction.stores.jetstream.updates import Listening, UpdateLog
from worker_abstraction.types import TaskRecord, TaskUpdate

logger = logging.getLogger(__name__)

SILENCE_SECONDS = 3.0  # how long a followed task may say nothing before its document is read
_RETRY_FIRST_SECONDS = 0.025
_RETRY_CAP_SECONDS = 5.0

FinishedRecord = Callable[[str], Awaitable[TaskRecord | None]]  # a task's record if its document is finished


class Followers:
    """Feeds handles on tasks that run elsewhere (see the module docstring).

    Args:
        log: the update log.
        finished_record: reads a task's document: its record if it is finished, else None.
        silence_seconds: how long a followed task may say nothing before its document is read.
    """

    def __init__(self, log: UpdateLog, finished_record: FinishedRecord, *, silence_seconds: float) -> None:
        self._log = log
        self._finished_record = finished_record
        self._silence = silence_seconds
        self._reconnected: asyncio.Future[None] | None = None

    def reconnected(self) -> None:
        """The connection to NATS came back: every follower reads its task's document now."""
        woken, self._reconnected = self._reconnected, None
        if woken is not None and not woken.done():
            woken.set_result(None)

    def handle(
        self, task_id: str, capability: str, params: Mapping[str, Any], owner: TaskOwner, *, fresh: bool
    ) -> tuple[AsyncTaskHandle, asyncio.Task[None]]:
        """A handle on a task run elsewhere, and the task that feeds it (it ends with the task; cancel it to
        stop sooner). `fresh`: the task was accepted a moment ago and has no updates yet (see
        `UpdateLog.follow`); its updates are kept from the moment this returns."""
        state = TaskState(task_id, capability, params)
        listening = self._log.listen(task_id)  # now: an update published before the feeding task runs is kept
        feeding = asyncio.ensure_future(self.feed(state, after=0, fresh=fresh, listening=listening))
        feeding.add_done_callback(lambda _: self._log.unlisten(listening))
        return AsyncTaskHandle(state, owner), feeding

    async def feed(self, state: TaskState, *, after: int, fresh: bool = False, listening: Listening) -> None:
        """Feed `state` the task's updates numbered above `after` until it ends (or its document says it did)."""
        task_id = state.task_id
        seen, first = after, fresh
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        while not state.done():
            raise_if_cancelled()  # (a cancel the log's reads swallowed must still stop it)
            updates = self._log.follow(task_id, seen, fresh=first, listening=listening)
            first = False
            heard: asyncio.Future[tuple[int, bytes]] | None = None
            try:
                while not state.done():
                    if heard is None:
                        heard = asyncio.ensure_future(_next(updates))
                    woken = self._woken()
                    await asyncio.wait((heard, woken), timeout=self._silence, return_when=asyncio.FIRST_COMPLETED)
                    if heard.done():
                        try:
                            sequence, data = heard.result()  # (raises what the log raised)
                        except StopAsyncIteration:
                            heard = None
                            break  # (a follow never ends by itself: read it again)
                        heard = None
                        seen = sequence
                        observe(state, serial.update_of(data))
                        backoff.reset()
                    elif (record := await self._ended(task_id)) is not None:
                        _end(state, record, seen)
            except NatsStoreError as error:
                logger.warning("following task %s: %s; trying again", task_id, error)
                await asyncio.sleep(backoff.pause())
            finally:
                if heard is not None:
                    heard.cancel()
                    with contextlib.suppress(BaseException):
                        await heard
                await updates.aclose()

    def _woken(self) -> asyncio.Future[None]:
        if self._reconnected is None:
            self._reconnected = asyncio.get_running_loop().create_future()
        return self._reconnected

    async def _ended(self, task_id: str) -> TaskRecord | None:
        try:
            return await self._finished_record(task_id)
        except NatsStoreError as error:  # (read again after the next silence)
            logger.debug("task %s: its document cannot be read now: %s", task_id, error, extra={"task_id": task_id})
            return None


async def _next(updates: AsyncGenerator[tuple[int, bytes], None]) -> tuple[int, bytes]:
    return await anext(updates)


def _end(state: TaskState, record: TaskRecord, seen: int) -> None:
    """End a followed task from its finished record: its run's last update (the log never got it)."""
    task_id = state.task_id
    logger.debug(
        "task %s ended without its last update in the log: ended from its document", task_id, extra={"task_id": task_id}
    )
    last = record.last_update or TaskUpdate(task_id=record.task_id, status=record.status)
    observe(state, dataclasses.replace(last, sequence=seen + 1))
