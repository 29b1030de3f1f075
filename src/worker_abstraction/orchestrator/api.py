"""The one orchestrator contract.

`AsyncOrchestratorAPI` is what both `AsyncOrchestrator` (the engine in this process) and
`RemoteOrchestrator` (the engine in a `wa orchestrator` daemon) offer, with the same names, the same
signatures and the same coroutine-or-not for every call, so a script moves from one to the other by
changing the line that makes it. Both subclass it: the calls that are the same on both are written here
once, over two small hooks each backend fills in (`_submit`, `_page`). The blocking `Orchestrator` is
written once over this contract, and a test pins all three.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol, Self, Unpack

from worker_abstraction.options import TaskOptionFields, TaskOptions, options_of
from worker_abstraction.orchestrator.core import batch
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.types import DeadLetter, TaskQuery, TaskQueryFields, TaskRecord, WorkerHealth, WorkerInfo


class AsyncOrchestratorAPI(Protocol):
    """What every orchestrator offers. Each call behaves the same on the engine here and on a daemon."""

    async def start(self) -> None:
        """Get ready: watch the registry and resume stored tasks (embedded); nothing to do for a daemon."""
        ...

    async def aclose(self) -> None:
        """Stop following tasks and close every connection."""
        ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def workers(self) -> list[WorkerInfo]:
        """The live workers, with their latest heartbeat and load as the registry has them."""
        ...

    async def wait_for_workers(
        self, capability: str | None = None, *, count: int = 1, timeout_seconds: float = 10.0
    ) -> list[WorkerInfo]:
        """Wait until `count` workers (offering `capability`, if given) can take tasks: live, and proven to
        answer as workers.

        Raises:
            NoWorkerError: not enough such workers appeared in time.
        """
        ...

    async def worker_health(self) -> list[WorkerHealth]:
        """Every live worker as the orchestrator sees it: standing, circuit breaker, its tasks there."""
        ...

    async def queue_depths(self) -> dict[str, dict[int, int]]:
        """Tasks waiting for a worker, per capability and priority."""
        ...

    async def execute_task(
        self,
        capability: str,
        params: Mapping[str, Any] | None = None,
        *,
        options: TaskOptions | None = None,
        **overrides: Unpack[TaskOptionFields],
    ) -> AsyncTaskHandle:
        """Submit a task: it runs on a capable worker with a free slot, or waits in the queue for one.

        Returns at once, whatever the workers are doing: the handle is PENDING (with no worker) while the
        task waits; a worker's refusal comes out of `handle.result()` as TaskRejectedError.

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

    def execute_many(
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
        return batch.execute_many(self._submit, capability, params, chosen, max_pending=max_pending)

    async def watch(self, task_id: str) -> AsyncTaskHandle:
        """A handle on any task the orchestrator knows, running or finished.

        Raises:
            TaskNotFoundError: the task is unknown (or no longer remembered).
        """
        ...

    async def cancel(self, task_id: str, reason: str = "") -> bool:
        """Cancel a task; see `AsyncTaskHandle.cancel`. False if it had already finished.

        Raises:
            TaskNotFoundError: the task is unknown.
        """
        ...

    async def task(self, task_id: str) -> TaskRecord:
        """Where a task stands: status, latest update, every attempt; finished tasks too.

        Raises:
            TaskNotFoundError: the task is unknown (or no longer remembered).
        """
        ...

    async def tasks(self, **filters: Unpack[TaskQueryFields]) -> list[TaskRecord]:
        """Task records, most recently submitted first: `status=`, `capability=`, `limit=`, `offset=`."""
        records, _ = await self._page(TaskQuery.of(**filters))
        return records

    async def task_page(self, **filters: Unpack[TaskQueryFields]) -> tuple[list[TaskRecord], bool]:
        """As `tasks`, and whether more records follow this page."""
        return await self._page(TaskQuery.of(**filters))

    async def dead_letters(self) -> list[DeadLetter]:
        """Tasks that failed for good after retryable failures, oldest first, with their attempts."""
        ...

    async def requeue_dead_letter(self, task_id: str) -> AsyncTaskHandle:
        """Submit a dead-lettered task again: same capability, arguments and options, a new task id.

        Raises:
            TaskNotFoundError: no dead letter has this id.
        """
        ...

    async def purge_dead_letters(self, task_ids: Iterable[str] | None = None) -> int:
        """Drop dead letters (all, or those given); returns how many were dropped."""
        ...

    # ---- what each backend fills in -----------------------------------------------------------------

    async def _submit(self, capability: str, params: Mapping[str, Any] | None, options: TaskOptions) -> AsyncTaskHandle:
        raise NotImplementedError

    async def _page(self, query: TaskQuery) -> tuple[list[TaskRecord], bool]:
        raise NotImplementedError
