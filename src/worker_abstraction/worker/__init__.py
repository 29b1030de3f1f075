"""The worker SDK: BaseWorker, and the context a capability receives."""

from worker_abstraction.context import TaskContext
from worker_abstraction.worker.base import BaseWorker

__all__ = ["BaseWorker", "TaskContext"]
