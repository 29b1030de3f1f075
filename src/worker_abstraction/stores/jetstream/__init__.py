"""Shared state on NATS JetStream: the registry's workers in a KV bucket (several `wa registry` replicas, one
view of the workers); for several orchestrator daemons sharing tasks, the task documents (what each task is
and how far it got, changed by compare-and-set), the work queue (who holds which task) and the update log
(every task's updates, replayable and followed from any replica)."""

from worker_abstraction.stores.jetstream.connection import (
    MIN_SERVER_VERSION,
    NatsOptions,
    NatsStoreError,
    NatsUnavailableError,
    check_server_version,
    connect,
    parse_servers,
)
from worker_abstraction.stores.jetstream.tasks import Held, StaleHolderError, TaskDoc, TaskDocs, TaskDocsOptions
from worker_abstraction.stores.jetstream.updates import UpdateLog, UpdateLogOptions
from worker_abstraction.stores.jetstream.work import Exhausted, Lease, WorkQueue, WorkQueueOptions
from worker_abstraction.stores.jetstream.workers import JetStreamWorkerStore

__all__ = [
    "MIN_SERVER_VERSION",
    "Exhausted",
    "Held",
    "JetStreamWorkerStore",
    "Lease",
    "NatsOptions",
    "NatsStoreError",
    "NatsUnavailableError",
    "StaleHolderError",
    "TaskDoc",
    "TaskDocs",
    "TaskDocsOptions",
    "UpdateLog",
    "UpdateLogOptions",
    "WorkQueue",
    "WorkQueueOptions",
    "check_server_version",
    "connect",
    "parse_servers",
]
