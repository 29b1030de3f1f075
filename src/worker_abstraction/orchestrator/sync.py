"""Blocking twins for scripts, written once over the orchestrator contract; no logic lives here.

`Orchestrator` wraps any `AsyncOrchestratorAPI`, the embedded engine or the daemon client alike, and runs
each call on a private event loop thread; `TaskHandle` does the same for `AsyncTaskHandle`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, Unpack

from worker_abstraction._loop import LoopThread
from worker_abstraction.exchanges import InputAnswer, InputRequest, OutputChunk
from worker_abstraction.options import TaskOptionFields, TaskOptions
from worker_abstraction.orchestrator.api import AsyncOrchestratorAPI
from worker_abstraction.orchestrator.core.gates import ConcurrencyLimit, LimitSet, RateLimit
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.workflow_handle import WorkflowHandle as AsyncWorkflowHandle
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator
from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator
from worker_abstraction.schedules.model import Schedule, ScheduleInfo
from worker_abstraction.tls import TLSConfig
from worker_abstraction.types import (
    Attempt,
    DeadLetter,
    LimitedQueue,
    TaskQueryFields,
    TaskRecord,
    TaskStatus,
    TaskUpdate,
    WorkerHealth,
    WorkerInfo,
)
from worker_abstraction.workflows.canvas import Canvas
from worker_abstraction.workflows.model import Workflow
from worker_abstraction.workflows.records import StepRecord, WorkflowRecord

T = TypeVar("T")


async def _next(stream: AsyncIterator[T]) -> T:
    return await anext(stream)


def _each(loop: LoopThread, stream: AsyncIterator[T]) -> Iterator[T]:
    while True:
        try:
            yield loop.run(_next(stream))
        except StopAsyncIteration:
            return


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
    def updates(self) -> Sequence[TaskUpdate]:
        return tuple(self._core.updates)

    @property
    def attempts(self) -> Sequence[Attempt]:
        return tuple(self._core.attempts)

    def done(self) -> bool:
        return self._core.done()

    def __iter__(self) -> Iterator[TaskUpdate]:
        return _each(self._loop, self._core.__aiter__())

    def wait(self, timeout_seconds: float | None = None) -> TaskUpdate:
        return self._loop.run(self._core.wait(timeout_seconds))

    def result(self, timeout_seconds: float | None = None) -> Any:
        return self._loop.run(self._core.result(timeout_seconds))

    def cancel(self, reason: str = "") -> bool:
        return self._loop.run(self._core.cancel(reason))

    @property
    def input_request(self) -> InputRequest | None:
        return self._core.input_request

    def input_requested(self, timeout_seconds: float | None = None, *, after: str = "") -> InputRequest:
        return self._loop.run(self._core.input_requested(timeout_seconds, after=after))

    def provide_input(self, value: Any, *, request_id: str = "") -> InputAnswer:
        return self._loop.run(self._core.provide_input(value, request_id=request_id))

    def stream(self, after: int = 0) -> Iterator[OutputChunk]:
        return _each(self._loop, self._core.stream(after))


class WorkflowRunHandle:
    """Blocking twin of `WorkflowHandle`."""

    def __init__(self, loop: LoopThread, core: AsyncWorkflowHandle) -> None:
        self._loop = loop
        self._core = core

    @property
    def workflow_id(self) -> str:
        return self._core.workflow_id

    @property
    def status(self) -> TaskStatus:
        return self._core.status

    def record(self) -> WorkflowRecord:
        return self._core.record()

    def __iter__(self) -> Iterator[StepRecord]:
        return _each(self._loop, aiter(self._core))

    def wait(self, timeout_seconds: float | None = None) -> WorkflowRecord:
        return self._loop.run(self._core.wait(timeout_seconds))

    def result(self, timeout_seconds: float | None = None) -> dict[str, Any]:
        return self._loop.run(self._core.result(timeout_seconds))

    def cancel(self, reason: str = "") -> bool:
        return self._loop.run(self._core.cancel(reason))


class Orchestrator:
    """Blocking twin of the orchestrator contract; see AsyncOrchestrator for behaviour.

    `Orchestrator(registry, **options)` embeds the engine in this process (options as AsyncOrchestrator's);
    `Orchestrator.connect("host:port")` offers the same calls served by a daemon (`wa orchestrator`).
    `tls` (a TLSConfig) makes either reach its peers over TLS.
    """

    def __init__(
        self, registry: str | None = None, *, address: str | None = None, tls: TLSConfig | None = None, **options: Any
    ) -> None:
        if (registry is None) == (address is None):
            raise TypeError("give either a registry (the engine runs here) or an address (a daemon), not both")
        if address is not None and options:
            raise TypeError(f"options apply to the engine in this process, not to a daemon: {sorted(options)}")
        self._loop = LoopThread()
        make: Callable[[], Coroutine[Any, Any, AsyncOrchestratorAPI]]
        if registry is not None:
            make = _embedded(registry, {**options, "tls": tls})
        else:
            assert address is not None
            make = _remote(address, tls)
        try:
            self._core: AsyncOrchestratorAPI = self._loop.run(make())
        except BaseException:
            self._loop.close()
            raise

    @classmethod
    def connect(cls, address: str, *, tls: TLSConfig | None = None) -> Orchestrator:
        """The same blocking API, served by the orchestrator daemon at host:port (over TLS with `tls`)."""
        return cls(address=address, tls=tls)

    def workers(self) -> list[WorkerInfo]:
        return self._loop.run(self._core.workers())

    def wait_for_workers(
        self, capability: str | None = None, *, count: int = 1, timeout_seconds: float = 10.0
    ) -> list[WorkerInfo]:
        return self._loop.run(self._core.wait_for_workers(capability, count=count, timeout_seconds=timeout_seconds))

    def worker_health(self) -> list[WorkerHealth]:
        return self._loop.run(self._core.worker_health())

    def queue_depths(self) -> dict[str, dict[int, int]]:
        return self._loop.run(self._core.queue_depths())

    def execute_task(
        self,
        capability: str,
        params: Mapping[str, Any] | None = None,
        *,
        options: TaskOptions | None = None,
        **overrides: Unpack[TaskOptionFields],
    ) -> TaskHandle:
        return self._handle(self._core.execute_task(capability, params, options=options, **overrides))

    def execute_many(
        self,
        capability: str,
        params: Iterable[Mapping[str, Any]],
        *,
        max_pending: int = 1000,
        options: TaskOptions | None = None,
        **overrides: Unpack[TaskOptionFields],
    ) -> Iterator[TaskHandle]:
        stream = self._core.execute_many(capability, params, max_pending=max_pending, options=options, **overrides)
        return (TaskHandle(self._loop, handle) for handle in _each(self._loop, stream))

    def watch(self, task_id: str) -> TaskHandle:
        return self._handle(self._core.watch(task_id))

    def cancel(self, task_id: str, reason: str = "") -> bool:
        return self._loop.run(self._core.cancel(task_id, reason))

    def provide_input(self, task_id: str, value: Any, *, request_id: str = "", answered_by: str = "") -> InputAnswer:
        return self._loop.run(self._core.provide_input(task_id, value, request_id=request_id, answered_by=answered_by))

    def claim(self, task_id: str, claimant: str = "", *, release: bool = False) -> TaskRecord:
        return self._loop.run(self._core.claim(task_id, claimant, release=release))

    def approve(self, task_id: str, reason: str = "") -> TaskStatus:
        return self._loop.run(self._core.approve(task_id, reason))

    def deny(self, task_id: str, reason: str = "") -> TaskStatus:
        return self._loop.run(self._core.deny(task_id, reason))

    def task(self, task_id: str) -> TaskRecord:
        return self._loop.run(self._core.task(task_id))

    def tasks(self, **filters: Unpack[TaskQueryFields]) -> list[TaskRecord]:
        return self._loop.run(self._core.tasks(**filters))

    def task_page(self, **filters: Unpack[TaskQueryFields]) -> tuple[list[TaskRecord], bool]:
        return self._loop.run(self._core.task_page(**filters))

    def dead_letters(self) -> list[DeadLetter]:
        return self._loop.run(self._core.dead_letters())

    def requeue_dead_letter(self, task_id: str) -> TaskHandle:
        return self._handle(self._core.requeue_dead_letter(task_id))

    def purge_dead_letters(self, task_ids: Iterable[str] | None = None) -> int:
        return self._loop.run(self._core.purge_dead_letters(task_ids))

    def run_workflow(
        self,
        workflow: Workflow | Canvas | Mapping[str, Any],
        *,
        workflow_id: str = "",
        idempotency_key: str = "",
        priority: int = 0,
        not_before: datetime | None = None,
        delay_seconds: float = 0.0,
    ) -> WorkflowRunHandle:
        made = self._core.run_workflow(workflow, workflow_id=workflow_id, idempotency_key=idempotency_key,
                                       priority=priority, not_before=not_before,
                                       delay_seconds=delay_seconds)  # fmt: skip
        return WorkflowRunHandle(self._loop, self._loop.run(made))

    def watch_workflow(self, workflow_id: str) -> WorkflowRunHandle:
        return WorkflowRunHandle(self._loop, self._loop.run(self._core.watch_workflow(workflow_id)))

    def workflow(self, workflow_id: str) -> WorkflowRecord:
        return self._loop.run(self._core.workflow(workflow_id))

    def workflows(self, *, status: TaskStatus | None = None, limit: int = 100) -> list[WorkflowRecord]:
        return self._loop.run(self._core.workflows(status=status, limit=limit))

    def cancel_workflow(self, workflow_id: str, reason: str = "") -> bool:
        return self._loop.run(self._core.cancel_workflow(workflow_id, reason))

    def rerun_workflow(
        self, workflow_id: str, step: str, *, downstream: bool = True, new_workflow_id: str = ""
    ) -> WorkflowRunHandle:
        made = self._core.rerun_workflow(workflow_id, step, downstream=downstream, new_workflow_id=new_workflow_id)
        return WorkflowRunHandle(self._loop, self._loop.run(made))

    def limits(self) -> LimitSet:
        return self._loop.run(self._core.limits())

    def set_limits(self, *limits: RateLimit | ConcurrencyLimit) -> LimitSet:
        return self._loop.run(self._core.set_limits(*limits))

    def remove_limits(self, capability: str) -> LimitSet:
        return self._loop.run(self._core.remove_limits(capability))

    def limited_queues(self) -> list[LimitedQueue]:
        return self._loop.run(self._core.limited_queues())

    def version_splits(self) -> dict[str, dict[str, int]]:
        return self._loop.run(self._core.version_splits())

    def set_version_split(self, capability: str, weights: Mapping[str, int]) -> dict[str, dict[str, int]]:
        return self._loop.run(self._core.set_version_split(capability, weights))

    def add_schedule(self, schedule: Schedule) -> ScheduleInfo:
        return self._loop.run(self._core.add_schedule(schedule))

    def update_schedule(self, schedule: Schedule) -> ScheduleInfo:
        return self._loop.run(self._core.update_schedule(schedule))

    def schedule(self, name: str) -> ScheduleInfo:
        return self._loop.run(self._core.schedule(name))

    def schedules(self) -> list[ScheduleInfo]:
        return self._loop.run(self._core.schedules())

    def pause_schedule(self, name: str) -> ScheduleInfo:
        return self._loop.run(self._core.pause_schedule(name))

    def resume_schedule(self, name: str, *, run_now: bool = False) -> ScheduleInfo:
        return self._loop.run(self._core.resume_schedule(name, run_now=run_now))

    def remove_schedule(self, name: str) -> bool:
        return self._loop.run(self._core.remove_schedule(name))

    def trigger_schedule(self, name: str) -> TaskHandle:
        return self._handle(self._core.trigger_schedule(name))

    def close(self) -> None:
        self._loop.run(self._core.aclose())
        self._loop.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _handle(self, submitted: Coroutine[Any, Any, AsyncTaskHandle]) -> TaskHandle:
        return TaskHandle(self._loop, self._loop.run(submitted))


def _embedded(registry: str, options: dict[str, Any]) -> Callable[[], Coroutine[Any, Any, AsyncOrchestratorAPI]]:
    async def make() -> AsyncOrchestratorAPI:
        return await AsyncOrchestrator.create(registry, **options)

    return make


def _remote(address: str, tls: TLSConfig | None) -> Callable[[], Coroutine[Any, Any, AsyncOrchestratorAPI]]:
    async def make() -> AsyncOrchestratorAPI:
        return RemoteOrchestrator(address, tls=tls)  # its channel belongs to the loop it is made on

    return make
