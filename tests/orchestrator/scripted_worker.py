"""A worker that says exactly what a test scripts: a real WorkerService on 127.0.0.1:0, seed-style RPCs only.

It answers GetWorkerInfo (so orchestrators prove it), accepts every task, and streams the updates the test
gives for it, which lets a test play a zombie, a liar or a worker that cannot cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf import empty_pb2
from grpc import aio

from worker_abstraction import RegistryClient, WorkerInfo, _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.types import CapabilitySpec, TaskStatus

Script = Callable[[pb.Task], AsyncIterator[pb.TaskResult]]


def result(task: pb.Task, status: TaskStatus, *, attempt: int | None = None, output_json: str = "") -> pb.TaskResult:
    """One update of `task` (of its own attempt unless told otherwise)."""
    return pb.TaskResult(
        task_id=task.task_id,
        status=int(status),  # type: ignore[arg-type]
        attempt=task.attempt if attempt is None else attempt,
        output_json=output_json,
    )


class ScriptedWorker(pb_grpc.WorkerServiceServicer):  # type: ignore[misc]
    def __init__(self, worker_id: str, capability: str, script: Script) -> None:
        self.worker_id, self.capability, self._script = worker_id, capability, script
        self.received: list[pb.Task] = []
        self.arrived = asyncio.Event()
        self._server = aio.server()
        self.address = ""
        self._client: RegistryClient | None = None
        self._heartbeats: asyncio.Task[None] | None = None

    async def start(self, registry: str) -> ScriptedWorker:
        pb_grpc.add_WorkerServiceServicer_to_server(self, self._server)
        self.address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        await self._server.start()
        self._client = RegistryClient(registry)
        await self._client.register(self.info())
        self._heartbeats = asyncio.create_task(self._beat(self._client))
        return self

    async def _beat(self, client: RegistryClient) -> None:
        while True:
            await asyncio.sleep(0.1)  # (a heartbeat period, not a synchronisation)
            await client.heartbeat(self.worker_id, 0)

    async def stop(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._heartbeats
        if self._client is not None:
            await self._client.aclose()
        await self._server.stop(None)

    def info(self) -> WorkerInfo:
        return WorkerInfo(
            worker_id=self.worker_id,
            name="scripted",
            address=self.address,
            capabilities=(CapabilitySpec(self.capability),),
        )

    async def GetWorkerInfo(self, request: empty_pb2.Empty, context: Any) -> pb.WorkerInfo:
        return _convert.worker_to_pb(self.info())

    async def ExecuteTask(self, request: pb.ExecuteTaskRequest, context: Any) -> pb.ExecuteTaskResponse:
        self.received.append(request.task)
        self.arrived.set()
        return pb.ExecuteTaskResponse(task_id=request.task.task_id, accepted=True)

    async def StreamTaskStatus(self, request: pb.GetTaskStatusRequest, context: Any) -> AsyncIterator[Any]:
        task = next(t for t in reversed(self.received) if t.task_id == request.task_id)
        async for update in self._script(task):
            yield pb.StreamTaskStatusResponse(result=update)
