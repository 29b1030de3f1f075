"""AsyncOrchestrator: find a capable worker, hand it the task, follow the task to its end."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import uuid
from collections import Counter
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from worker_abstraction import _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.errors import InvalidParametersError, NoWorkerError, TaskRejectedError
from worker_abstraction.orchestrator.discovery import WorkerDirectory
from worker_abstraction.orchestrator.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.link import WorkerLink, WorkerUnreachableError
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.types import WorkerInfo

logger = logging.getLogger(__name__)


class AsyncOrchestrator:
    """Dispatches tasks to the least loaded capable worker and follows them.

    Args:
        registry: host:port of the registry.
        discovery_timeout_seconds: how long `start()` waits for the first view of the workers.
        poll_interval_seconds: polling period when the registry lacks WatchWorkers (a seed registry).
        fast_path: use a worker's task channel when it offers one (False: always the seed's RPCs).
    """

    def __init__(
        self,
        registry: str,
        *,
        discovery_timeout_seconds: float = 5.0,
        poll_interval_seconds: float = 2.0,
        fast_path: bool = True,
    ) -> None:
        self.registry = registry
        self._discovery_timeout = discovery_timeout_seconds
        self._registry_client = RegistryClient(registry)
        self._directory = WorkerDirectory(self._registry_client, poll_interval_seconds=poll_interval_seconds)
        self._fast_path = fast_path
        self._links: dict[str, WorkerLink] = {}
        # Tasks this orchestrator has in flight per worker: fresher than the load in the last heartbeat.
        self._in_flight: Counter[str] = Counter()
        self._handles: dict[str, AsyncTaskHandle] = {}
        self._tie_breaker = itertools.count()
        self._started = False

    @classmethod
    async def create(cls, registry: str, **options: Any) -> AsyncOrchestrator:
        """Construct and start an orchestrator."""
        orchestrator = cls(registry, **options)
        await orchestrator.start()
        return orchestrator

    async def start(self) -> None:
        """Start watching the registry and wait (briefly) for the first view of the workers."""
        if self._started:
            return
        self._started = True
        self._directory.start()
        try:
            async with asyncio.timeout(self._discovery_timeout):
                await self._directory.synced.wait()
        except TimeoutError:
            logger.warning("no answer from registry %s yet; continuing without workers", self.registry)

    async def aclose(self) -> None:
        """Stop following tasks and close every connection."""
        await self._directory.aclose()
        followers = [h.follower for h in self._handles.values() if h.follower is not None]
        for follower in followers:
            follower.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        for link in self._links.values():
            await link.aclose()
        await self._registry_client.aclose()

    async def __aenter__(self) -> AsyncOrchestrator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def workers(self) -> list[WorkerInfo]:
        """The live workers as currently known."""
        return list(self._directory.workers.values())

    async def wait_for_workers(
        self, capability: str | None = None, *, count: int = 1, timeout_seconds: float = 10.0
    ) -> list[WorkerInfo]:
        """Wait until `count` live workers (offering `capability`, if given) are known.

        Raises:
            NoWorkerError: not enough such workers appeared in time.
        """
        try:
            async with asyncio.timeout(timeout_seconds):
                return await self._directory.wait_until(capability, count)
        except TimeoutError:
            raise NoWorkerError(capability or "*", f"fewer than {count} worker(s) after {timeout_seconds:g}s") from None

    async def execute_task(
        self,
        capability: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout_seconds: float = 60,
        metadata: Mapping[str, str] | None = None,
        task_id: str | None = None,
    ) -> AsyncTaskHandle:
        """Send a task to the least loaded worker offering `capability`.

        Args:
            capability: the capability to invoke.
            params: its arguments; each value must be JSON-serializable.
            timeout_seconds: execution deadline (the worker enforces it; 0 means none).
            metadata: free-form string metadata carried with the task.
            task_id: the task's id (default: a new random id).

        Returns:
            A handle that streams the task's updates and gives its result.

        Raises:
            NoWorkerError: no live worker offers the capability.
            TaskRejectedError: the worker refused the task (its reason is in `reason`).
        """
        if not self._started:
            await self.start()
        task = pb.Task(
            task_id=task_id or uuid.uuid4().hex,
            capability_name=capability,
            parameters=_encode_parameters(params or {}),
            # The contract counts whole seconds; round up so a short deadline never becomes "none".
            timeout_seconds=math.ceil(timeout_seconds) if timeout_seconds > 0 else 0,
            created_at=_convert.now_timestamp(),
            metadata=dict(metadata or {}),
        )
        tried: list[str] = []
        while True:
            worker = self._pick(capability, exclude=tried)
            tried.append(worker.worker_id)
            task.worker_id = worker.worker_id
            handle = self._track(task, worker)
            try:
                response = await self._link(worker.address).dispatch(task, handle)
            except WorkerUnreachableError as error:
                handle.finish()
                if self._pick_or_none(capability, exclude=tried) is None:
                    raise TaskRejectedError(
                        task.task_id, f"worker {worker.worker_id} at {worker.address}: {error}"
                    ) from error
                logger.info("worker %s unreachable (%s); trying another", worker.worker_id, error)
                continue
            except BaseException:
                handle.finish()
                raise
            if not response.accepted:
                handle.finish()
                raise TaskRejectedError(task.task_id, response.message or "no reason given")
            logger.debug("task %s -> worker %s", task.task_id, worker.worker_id, extra={"task_id": task.task_id})
            return handle

    def _track(self, task: pb.Task, worker: WorkerInfo) -> AsyncTaskHandle:
        handle = AsyncTaskHandle(
            task_id=task.task_id,
            capability=task.capability_name,
            worker_id=worker.worker_id,
            worker_address=worker.address,
            timeout_seconds=float(task.timeout_seconds),
            on_done=self._task_done,
        )
        self._in_flight[worker.worker_id] += 1
        self._handles[task.task_id] = handle
        return handle

    def _pick(self, capability: str, *, exclude: list[str]) -> WorkerInfo:
        worker = self._pick_or_none(capability, exclude=exclude)
        if worker is not None:
            return worker
        if exclude:
            raise NoWorkerError(capability, "every capable worker was unreachable")
        if not self._directory.synced.is_set():
            detail = f"registry {self.registry} not reached yet"
            if self._directory.last_error:
                detail += f": {self._directory.last_error}"
            raise NoWorkerError(capability, detail)
        offered = sorted({c.name for w in self._directory.workers.values() for c in w.capabilities})
        raise NoWorkerError(capability, "live workers offer: " + (", ".join(offered) or "nothing, none are live"))

    def _pick_or_none(self, capability: str, *, exclude: list[str]) -> WorkerInfo | None:
        candidates = [w for w in self._directory.capable(capability) if w.worker_id not in exclude]
        if not candidates:
            return None
        # Least loaded by our own in-flight count, then by the worker's reported load; the rotating
        # tie-breaker spreads equal candidates instead of always picking the first.
        turn = next(self._tie_breaker)
        return min(
            candidates,
            key=lambda w: (
                self._in_flight[w.worker_id],
                w.current_load,
                (hash(w.worker_id) + turn) % len(candidates),
            ),
        )

    def _link(self, address: str) -> WorkerLink:
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = WorkerLink(address, fast_path=self._fast_path)
        return link

    def _task_done(self, handle: AsyncTaskHandle) -> None:
        self._handles.pop(handle.task_id, None)
        self._in_flight[handle.worker_id] -= 1
        if self._in_flight[handle.worker_id] <= 0:
            del self._in_flight[handle.worker_id]


def _encode_parameters(params: Mapping[str, Any]) -> list[pb.TaskParameter]:
    encoded = []
    for key, value in params.items():
        try:
            encoded.append(pb.TaskParameter(key=key, value_json=json.dumps(value)))
        except (TypeError, ValueError) as error:
            raise InvalidParametersError([f"parameter {key!r} is not JSON-serializable: {error}"]) from error
    return encoded
