"""Blocking twins of AsyncOrchestrator and AsyncTaskHandle for scripts; no logic lives here."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar, cast

from worker_abstraction._loop import LoopThread
from worker_abstraction.orchestrator.client import AsyncOrchestrator
from worker_abstraction.orchestrator.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.remote import RemoteOrchestrator
from worker_abstraction.orchestrator.retry import RetryPolicy
from worker_abstraction.types import Attempt, DeadLetter, TaskRecord, TaskStatus, TaskUpdate, WorkerHealth, WorkerInfo

T = TypeVar("T")


async def _next(stream: AsyncIterator[T]) -> T:
    return await anext(stream)


async def _awaited(value: Awaitable[T]) -> T:
    return await value


async def _remote(address: str) -> RemoteOrchestrator:
    return RemoteOrchestrator(address)  # its channel belongs to the loop it is made on


class TaskHandle:
    """Blocking twin of AsyncTaskHandle; see it for behaviour."""

    def __init__(self, loop: LoopThread, core: AsyncTaskHandle) -> None:
        self._loop = loop
        self._core = core

    @property
    def task_id(self) -> str:
        return self._core.task_id

    @property
    def capability(self) -> str:
        return self._core.capability

    @property
    def worker_id(self) -> str:
        return self._core.worker_id

    @property
    def worker_address(self) -> str:
        return self._core.worker_address

    @property
    def params(self) -> Mapping[str, Any]:
        return self._core.params

    @property
    def status(self) -> TaskStatus:
        return self._core.status

    @property
    def updates(self) -> list[TaskUpdate]:
        return list(self._core.updates)

    @property
    def attempts(self) -> list[Attempt]:
        return list(self._core.attempts)

    def done(self) -> bool:
        return self._core.done()

    def __iter__(self) -> Iterator[TaskUpdate]:
        stream = self._core.__aiter__()
        while True:
            try:
                yield self._loop.run(_next(stream))
            except StopAsyncIteration:
                return

    def wait(self, timeout_seconds: float | None = None) -> TaskUpdate:
        return self._loop.run(self._core.wait(timeout_seconds))

    def result(self, timeout_seconds: float | None = None) -> Any:
        return self._loop.run(self._core.result(timeout_seconds))

    def cancel(self, reason: str = "") -> bool:
        return self._loop.run(self._core.cancel(reason))


class Orchestrator:
    """Blocking twin of AsyncOrchestrator; see it for behaviour.

    `Orchestrator(registry)` embeds the engine in this process; `Orchestrator.connect("host:port")` offers
    the same calls served by an orchestrator daemon (`wa orchestrator`), through RemoteOrchestrator.
    """

    def __init__(self, registry: str, **options: Any) -> None:
        self._loop = LoopThread()
        self._core: AsyncOrchestrator | RemoteOrchestrator = self._loop.run(
            AsyncOrchestrator.create(registry, **options)
        )

    @classmethod
    def connect(cls, address: str) -> Orchestrator:
        """The same blocking API, served by the orchestrator daemon at host:port."""
        orchestrator = cls.__new__(cls)
        orchestrator._loop = LoopThread()
        orchestrator._core = orchestrator._loop.run(_remote(address))
        return orchestrator

    def _resolve(self, value: Awaitable[T] | T) -> T:
        # The embedded engine answers some calls at once; the daemon's client always awaits the network.
        if inspect.isawaitable(value):
            return self._loop.run(_awaited(cast(Awaitable[T], value)))
        return value

    def workers(self) -> list[WorkerInfo]:
        return self._resolve(self._core.workers())

    def wait_for_workers(
        self, capability: str | None = None, *, count: int = 1, timeout_seconds: float = 10.0
    ) -> list[WorkerInfo]:
        return self._loop.run(self._core.wait_for_workers(capability, count=count, timeout_seconds=timeout_seconds))

    def queue_depths(self) -> dict[str, dict[int, int]]:
        return self._resolve(self._core.queue_depths())

    def cancel(self, task_id: str, reason: str = "") -> bool:
        return self._loop.run(self._core.cancel(task_id, reason))

    def dead_letters(self) -> list[DeadLetter]:
        return self._resolve(self._core.dead_letters())

    def requeue_dead_letter(self, task_id: str) -> TaskHandle:
        return TaskHandle(self._loop, self._loop.run(self._core.requeue_dead_letter(task_id)))

    def purge_dead_letters(self, task_ids: Iterable[str] | None = None) -> int:
        return self._resolve(self._core.purge_dead_letters(task_ids))

    def worker_health(self) -> list[WorkerHealth]:
        return self._resolve(self._core.worker_health())

    def task(self, task_id: str) -> TaskRecord:
        return self._loop.run(self._core.task(task_id))

    def tasks(
        self,
        *,
        status: TaskStatus | Iterable[TaskStatus] | None = None,
        capability: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TaskRecord]:
        return self._loop.run(self._core.tasks(status=status, capability=capability, limit=limit, offset=offset))

    def execute_task(
        self,
        capability: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout_seconds: float = 60,
        priority: int = 0,
        fairness_key: str = "",
        required_tags: Iterable[str] = (),
        preferred_tags: Iterable[str] = (),
        worker_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        task_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        queue_timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
    ) -> TaskHandle:
        return TaskHandle(
            self._loop,
            self._loop.run(
                self._core.execute_task(
                    capability,
                    params,
                    timeout_seconds=timeout_seconds,
                    priority=priority,
                    fairness_key=fairness_key,
                    required_tags=required_tags,
                    preferred_tags=preferred_tags,
                    worker_id=worker_id,
                    metadata=metadata,
                    task_id=task_id,
                    retry_policy=retry_policy,
                    queue_timeout_seconds=queue_timeout_seconds,
                    idempotency_key=idempotency_key,
                )
            ),
        )

    def execute_many(
        self,
        capability: str,
        params: Iterable[Mapping[str, Any]],
        *,
        max_pending: int = 1000,
        **options: Any,
    ) -> Iterator[TaskHandle]:
        stream = self._core.execute_many(capability, params, max_pending=max_pending, **options)
        while True:
            try:
                yield TaskHandle(self._loop, self._loop.run(_next(stream)))
            except StopAsyncIteration:
                return

    def close(self) -> None:
        self._loop.run(self._core.aclose())
        self._loop.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
