"""ScopedUpdateLog: the update log, followed one task at a time (a core subscription per followed task's
subject, not one to every task's), as the partitioned home's daemons follow the tasks others run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js.client import JetStreamContext

from worker_abstraction.stores.jetstream.connection import NATS_ERRORS, NatsUnavailableError, ensure_stream
from worker_abstraction.stores.jetstream.updates import (
    SUBJECT_PREFIX,
    Listening,
    UpdateLog,
    UpdateLogOptions,
    stream_config,
    task_token,
)


class ScopedUpdateLog(UpdateLog):
    """The update log, followed one task at a time: a core subscription to `wa.updates.<token>` while a
    follow of that task listens (made when it starts listening; `follow` waits for it before it reads what
    the stream kept, so no update falls between the two), instead of one subscription to every task's."""

    def __init__(self, client: Client, js: JetStreamContext, options: UpdateLogOptions) -> None:
        super().__init__(js, options)
        self._client = client
        self._subscriptions: dict[str, asyncio.Future[Subscription]] = {}

    @classmethod
    async def open_scoped(cls, client: Client, options: UpdateLogOptions) -> ScopedUpdateLog:
        """Create the stream if missing (as `UpdateLog.open` makes it); no subscription yet.

        Raises:
            NatsUnavailableError: the stream cannot be made.
        """
        js = client.jetstream(timeout=options.answer_timeout_seconds)
        config = stream_config(options)
        try:
            await ensure_stream(js, config)
        except NATS_ERRORS as error:
            raise NatsUnavailableError(f"cannot open the NATS update log {options.stream!r}: {error!r}") from error
        return cls(client, js, options)

    def listen(self, task_id: str) -> Listening:
        listening = super().listen(task_id)
        if listening.token not in self._subscriptions:
            self._subscriptions[listening.token] = self._subscribe(listening.token)
        return listening

    def unlisten(self, listening: Listening) -> None:
        super().unlisten(listening)
        if listening.token in self._followers:
            return
        subscribing = self._subscriptions.pop(listening.token, None)
        if subscribing is not None:
            subscribing.add_done_callback(_unsubscribe)

    async def subscribed(self, task_id: str) -> None:
        """Return once the subscription to a listened task's updates is on its way to the server (its SUB is
        written before anything this connection writes after this returns).

        Raises:
            NatsUnavailableError: it could not be made (a later call tries again).
        """
        token = task_token(task_id)
        subscribing = self._subscriptions.get(token)
        if subscribing is None:
            return
        try:
            await asyncio.shield(subscribing)
        except NATS_ERRORS as error:
            if self._subscriptions.get(token) is subscribing and token in self._followers:
                self._subscriptions[token] = self._subscribe(token)
            raise NatsUnavailableError(f"cannot hear the updates of task {task_id[:40]!r}: {error!r}") from error

    async def follow(
        self, task_id: str, after: int = 0, *, fresh: bool = False, listening: Listening | None = None
    ) -> AsyncGenerator[tuple[int, bytes], None]:
        own = listening is None
        if listening is None:
            listening = self.listen(task_id)
        try:
            await self.subscribed(task_id)
            async for item in super().follow(task_id, after, fresh=fresh, listening=listening):
                yield item
        finally:
            if own:
                self.unlisten(listening)

    async def close(self) -> None:
        subscriptions, self._subscriptions = list(self._subscriptions.values()), {}
        for subscribing in subscriptions:
            if not subscribing.done():
                subscribing.cancel()
            elif not subscribing.cancelled() and subscribing.exception() is None:
                with contextlib.suppress(*NATS_ERRORS):
                    await subscribing.result().unsubscribe()
        await super().close()

    def _subscribe(self, token: str) -> asyncio.Future[Subscription]:
        subscribing = asyncio.ensure_future(self._client.subscribe(f"{SUBJECT_PREFIX}.{token}", cb=self._route))
        subscribing.add_done_callback(_retrieved)
        return subscribing


def _retrieved(future: asyncio.Future[Subscription]) -> None:
    if not future.cancelled():
        future.exception()  # (its waiters hear it; unheard it is not an error)


def _unsubscribe(future: asyncio.Future[Subscription]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    unsubscribing = asyncio.ensure_future(future.result().unsubscribe())
    unsubscribing.add_done_callback(lambda done: done.cancelled() or done.exception())
