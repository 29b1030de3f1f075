"""The last message of every subject of a stream that matches a filter, each once (a KV bucket's values).

nats-py's own way, a KV watcher (`keys()`, `watchall()`), says "that was all" when its consumer has nothing
left to deliver and it has read nothing yet, which is also true while the first values are on their way: a
listing made that way can come back empty. Here the end is the server's word: a consumer whose server-side
count of delivered messages is zero with none pending is empty; otherwise the last value read is the one
that leaves none pending.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from worker_abstraction.stores.jetstream.connection import NATS_ERRORS, NatsUnavailableError

IDLE_SECONDS = 2.0  # how long a read waits for the next value before it counts NATS as not answering


async def last_values(js: JetStreamContext, stream: str, subjects: str, *, what: str) -> AsyncIterator[Msg]:
    """Each subject's last message (deletion markers included: see `is_deletion`), in the stream's order.

    Raises:
        NatsUnavailableError: NATS did not answer (`what` names what was being read); the values yielded so
            far stand.
    """
    try:
        reader = await js.subscribe(
            subjects, stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT
        )
    except NATS_ERRORS as error:
        raise NatsUnavailableError(f"cannot read {what}: {error!r}") from error
    try:
        try:
            info = await reader.consumer_info()
            if info.num_pending == 0 and (info.delivered is None or not info.delivered.consumer_seq):
                return  # (nothing there)
            while True:
                message = await reader.next_msg(timeout=IDLE_SECONDS)
                yield message
                if message.metadata.num_pending == 0:
                    return
        except NATS_ERRORS as error:
            raise NatsUnavailableError(f"reading {what} stopped: {error!r}") from error
    finally:
        with contextlib.suppress(*NATS_ERRORS):
            await reader.unsubscribe()


def is_deletion(message: Msg) -> bool:
    """Whether a message is a KV deletion or purge marker, or the server's marker of an expired key."""
    headers = message.headers
    if not headers:
        return False
    return headers.get(KV_OP) in (KV_DEL, KV_PURGE) or "Nats-Marker-Reason" in headers


async def delivered(watcher: KeyValue.KeyWatcher) -> int:
    """How many entries the server had delivered to a nats-py KV watcher when the watcher signalled the end
    of the initial values (None): a reader counts itself caught up only once it has read that many, since
    the signal also comes while the first entries are on their way. 0 if the server cannot say (as nats-py
    assumes).
    """
    subscription = getattr(watcher, "_sub", None)  # (nats-py 2.x keeps the watcher's consumer there)
    if subscription is None:
        return 0
    try:
        info = await subscription.consumer_info()
    except Exception:  # (NATS did not answer: as nats-py assumes)
        return 0
    return int(info.delivered.consumer_seq) if info.delivered is not None else 0
