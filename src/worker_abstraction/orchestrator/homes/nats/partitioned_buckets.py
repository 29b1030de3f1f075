"""How a `PartitionedStore` is opened: its options, and its buckets, stream and writer made or found.

The buckets (documents, idempotency keys, dead letters) are created if missing, each with history 1, and their
streams let take per-message TTLs (the moved markers and what retention keeps expire by them); then the update
log is opened, and the writer every write goes through.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from worker_abstraction.stores.jetstream.connection import NATS_ERRORS, NatsStoreError, NatsUnavailableError
from worker_abstraction.stores.jetstream.pipeline import JetStreamWriter, WriterOptions
from worker_abstraction.stores.jetstream.scoped_updates import ScopedUpdateLog
from worker_abstraction.stores.jetstream.tasks import SharedLetters
from worker_abstraction.stores.jetstream.updates import UpdateLogOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionedStoreOptions:
    """Where a partitioned home keeps its tasks.

    Args:
        partitions: how many partitions task ids hash to (the same on every daemon: the leases check it).
        docs_bucket, keys_bucket, dead_letters_bucket: the KV buckets of the documents, the idempotency keys
            and the dead letters.
        replicas: copies of each bucket and stream in a NATS cluster (1, or 3 for R3).
        answer_timeout_seconds: how long a read, or a write's acknowledgement, is waited for.
        moved_marker_seconds: how long the marker a finished document leaves on its live key lasts (whole
            seconds, at least 1): a caller-chosen id is refused meanwhile even without the finished copy.
        updates: the update log's stream.
    """

    partitions: int = 32
    docs_bucket: str = "wa_ptasks"
    keys_bucket: str = "wa_ptask_keys"
    dead_letters_bucket: str = "wa_pdead_letters"
    replicas: int = 1
    answer_timeout_seconds: float = 5.0
    moved_marker_seconds: int = 10
    updates: UpdateLogOptions = field(default_factory=UpdateLogOptions)


async def open_buckets(
    client: Client, options: PartitionedStoreOptions
) -> tuple[KeyValue, SharedLetters, JetStreamWriter, ScopedUpdateLog]:
    """Create the buckets and the stream if missing, and open the writer: the documents' bucket, the shared
    letters (idempotency keys and dead letters), the writer and the update log.

    Raises:
        NatsStoreError: bad options; NatsUnavailableError: NATS did not answer.
    """
    if not 1 <= options.replicas <= 5 or options.partitions < 1 or options.moved_marker_seconds < 1:
        raise NatsStoreError(
            f"partitioned store options: {options!r} (replicas 1 to 5, partitions >= 1, moved_marker_seconds >= 1)"
        )
    js = client.jetstream(timeout=options.answer_timeout_seconds)
    buckets = []
    for name in (options.docs_bucket, options.keys_bucket, options.dead_letters_bucket):
        try:
            try:
                buckets.append(await js.key_value(name))
            except BucketNotFoundError:
                # (nats-py makes every bucket with per-message TTL allowed: the moved markers expire by it)
                config = KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE, replicas=options.replicas)
                buckets.append(await js.create_key_value(config))
        except NATS_ERRORS as error:
            raise NatsUnavailableError(f"cannot open the NATS bucket {name!r}: {error!r}") from error
    docs, keys, letters = buckets
    for name in (options.docs_bucket, options.keys_bucket, options.dead_letters_bucket):
        await _allow_msg_ttl(js, f"KV_{name}")
    log = await ScopedUpdateLog.open_scoped(client, options.updates)
    writer = await JetStreamWriter.open(client, WriterOptions(ack_timeout_seconds=options.answer_timeout_seconds))
    shared = SharedLetters(
        js, keys, letters, writer, keys_bucket=options.keys_bucket, letters_bucket=options.dead_letters_bucket
    )
    return docs, shared, writer, log


async def _allow_msg_ttl(js: JetStreamContext, stream: str) -> None:
    """Let a bucket's stream take per-message TTLs (the moved markers and what retention keeps expire by them),
    if a bucket made before did not (a stream may be changed to allow them, never back).

    Raises:
        NatsUnavailableError: NATS did not answer.
    """
    try:
        info = await js.stream_info(stream)
        if not info.config.allow_msg_ttl:
            logger.info("letting the stream %s take per-message TTLs", stream)
            await js.update_stream(dataclasses.replace(info.config, allow_msg_ttl=True))
    except NATS_ERRORS as error:
        raise NatsUnavailableError(f"cannot let {stream!r} take per-message TTLs: {error!r}") from error
