"""Where the registry keeps its workers: a small interface and its implementations."""

from worker_abstraction.stores.base import WorkerRecord, WorkerStore
from worker_abstraction.stores.memory import MemoryWorkerStore

__all__ = ["MemoryWorkerStore", "WorkerRecord", "WorkerStore"]
