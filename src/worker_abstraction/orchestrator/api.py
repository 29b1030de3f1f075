"""The one orchestrator contract, and what its two backends share.

`AsyncOrchestratorAPI` is what both `AsyncOrchestrator` (the engine in this process) and
`RemoteOrchestrator` (the engine in an `wa orchestrator` daemon) offer, with the same names, the same
signatures and the same coroutine-or-not for every call, so a script moves from one to the other by
changing the line that makes it. The blocking `Orchestrator` is written once over this contract, and a
test pins all three.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol, Self, Unpack

from worker_abstraction.options import TaskOptionFields, TaskOptions, options_of
from worker_abstraction.orchestrator import batch
from worker_abstraction.orchestrator.handle import AsyncTaskHandle
from worker_abstraction.types import DeadLetter, TaskRecord, TaskStatus, WorkerHealth, WorkerInfo


class AsyncOrchestratorAPI(Protocol):
    """What every orchestrator offers; see `AsyncOrchestrator` for each call's behaviour."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def workers(self) -> list[WorkerInfo]: ...

    async def wait_for_workers(
        self, capability: str | None = None, *, count: int = 1, timeout_seconds: float = 10.0
    ) -> list[WorkerInfo]: ...

    async def worker_health(self) -> list[WorkerHealth]: ...

    async def queue_depths(self) -> dict[str, dict[int, int]]: ...

    async def execute_task(
        self,
        capability: str,
        params: Mapping[str, Any] | None = None,
        *,
        options: TaskOptions | None = None,
        **overrides: Unpack[TaskOptionFields],
    ) -> AsyncTaskHandle: ...

    def execute_many(
        self,
        capability: str,
        params: Iterable[Mapping[str, Any]],
        *,
        max_pending: int = 1000,
        options: TaskOptions | None = None,
        **overrides: Unpack[TaskOptionFields],
    ) -> AsyncIterator[AsyncTaskHandle]: ...

    async def watch(self, task_id: str) -> AsyncTaskHandle: ...

    async def cancel(self, task_id: str, reason: str = "") -> bool: ...

    async def task(self, task_id: str) -> TaskRecord: ...

    async def tasks(
        self,
        *,
        status: TaskStatus | Iterable[TaskStatus] | None = None,
        capability: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TaskRecord]: ...

    async def task_page(
        self,
        *,
        status: TaskStatus | Iterable[TaskStatus] | None = None,
        capability: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[TaskRecord], bool]: ...

    async def dead_letters(self) -> list[DeadLetter]: ...

    async def requeue_dead_letter(self, task_id: str) -> AsyncTaskHandle: ...

    async def purge_dead_letters(self, task_ids: Iterable[str] | None = None) -> int: ...


class OrchestratorBase:
    """The calls both backends make the same way, on top of the ones each makes its own way."""

    async def start(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def execute_task(
        self,
        capability: str,
        params: Mapping[str, Any] | None = None,
        *,
        options: TaskOptions | None = None,
        **overrides: Unpack[TaskOptionFields],
    ) -> AsyncTaskHandle:
        """Submit a task: it runs on a capable worker with a free slot, or waits in the queue for one.

        Returns at once: the handle is PENDING (with no worker) while the task waits.

        Args:
            capability: the capability to invoke.
            params: its arguments, checked against the capability's declared parameters before anything
                is queued; each value must be JSON-serializable.
            options: the task's options (`TaskOptions`); keyword arguments of the same names override them.
            **overrides: any `TaskOptions` field, e.g. `timeout_seconds=30, priority=5`.

        Returns:
            A handle that streams the task's updates and gives its result.

        Raises:
            InvalidParametersError: the arguments break the capability's declared parameters (all listed).
            InvalidTaskOptionsError: an option out of range (all listed).
            NoWorkerError: no live worker offers the capability, or none meets the task's requirements.
            QueueFullError: the queue is at its bound.
            TaskExistsError: the task id was used before (ids are never reused).
            OrchestratorUnavailableError: (daemon) it could not be reached; whether it accepted the task is
                unknown, so submit again with the same `idempotency_key` to be sure of exactly one task.
        """
        return await self._submit(capability, params, options_of(options, overrides))

    async def _submit(self, capability: str, params: Mapping[str, Any] | None, options: TaskOptions) -> AsyncTaskHandle:
        raise NotImplementedError

    async def execute_many(
        self,
        capability: str,
        params: Iterable[Mapping[str, Any]],
        *,
        max_pending: int = 1000,
        options: TaskOptions | None = None,
        **overrides: Unpack[TaskOptionFields],
    ) -> AsyncIterator[AsyncTaskHandle]:
        """Submit one task per params mapping and yield each handle as its task finishes.

        At most `max_pending` tasks are submitted and unfinished at once, so a million-item input never
        floods the queue. Options are those of `execute_task`; `handle.params` tells the tasks apart.

        Raises:
            The errors of `execute_task`, for the first task that hits them; tasks already submitted keep
            running.
        """
        chosen = options_of(options, overrides)
        async for handle in batch.execute_many(self._submit, capability, params, chosen, max_pending=max_pending):
            yield handle

    async def tasks(
        self,
        *,
        status: TaskStatus | Iterable[TaskStatus] | None = None,
        capability: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TaskRecord]:
        """Task records, most recently submitted first, optionally of some statuses / one capability."""
        records, _ = await self.task_page(status=status, capability=capability, limit=limit, offset=offset)
        return records

    async def task_page(
        self,
        *,
        status: TaskStatus | Iterable[TaskStatus] | None = None,
        capability: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[TaskRecord], bool]:
        raise NotImplementedError
