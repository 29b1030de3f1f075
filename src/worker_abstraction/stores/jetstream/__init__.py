"""The registry's shared store on NATS JetStream KV: several `wa registry` replicas, one view of the workers."""

from worker_abstraction.stores.jetstream.connection import (
    MIN_SERVER_VERSION,
    NatsOptions,
    NatsStoreError,
    check_server_version,
    connect,
    parse_servers,
)
from worker_abstraction.stores.jetstream.workers import JetStreamWorkerStore

__all__ = [
    "MIN_SERVER_VERSION",
    "JetStreamWorkerStore",
    "NatsOptions",
    "NatsStoreError",
    "check_server_version",
    "connect",
    "parse_servers",
]
