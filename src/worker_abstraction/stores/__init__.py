"""Where the registry keeps its workers: a small interface and its implementations (the shared NATS one is
`worker_abstraction.stores.jetstream.JetStreamWorkerStore`)."""

from worker_abstraction.stores.base import SharedWorkerStore, WorkerChange, WorkerRecord, WorkerStore
from worker_abstraction.stores.memory import MemoryWorkerStore

__all__ = ["MemoryWorkerStore", "SharedWorkerStore", "WorkerChange", "WorkerRecord", "WorkerStore"]
