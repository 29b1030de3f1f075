"""Shared state on NATS JetStream: the registry's workers in a KV bucket (several `wa registry` replicas, one
view of the workers); for several orchestrator daemons sharing tasks, the task documents (what each task is
and how far it got, changed by compare-and-set), the partitions' leases (which daemon runs which tasks), the
pipelined writer, and the update log (every task's updates, replayable and followed from any daemon)."""

from worker_abstraction.stores.jetstream.connection import (
    MIN_SERVER_VERSION,
    NatsOptions,
    NatsStoreError,
    NatsUnavailableError,
    check_server_version,
    connect,
    parse_servers,
)
from worker_abstraction.stores.jetstream.tasks import SharedLetters, StaleHolderError, TaskDoc
from worker_abstraction.stores.jetstream.updates import UpdateLog, UpdateLogOptions
from worker_abstraction.stores.jetstream.workers import JetStreamWorkerStore

__all__ = [
    "MIN_SERVER_VERSION",
    "JetStreamWorkerStore",
    "NatsOptions",
    "NatsStoreError",
    "NatsUnavailableError",
    "SharedLetters",
    "StaleHolderError",
    "TaskDoc",
    "UpdateLog",
    "UpdateLogOptions",
    "check_server_version",
    "connect",
    "parse_servers",
]
