"""A worker that knows only the seed's worker.proto, written as a grpc.aio server on the seed's stubs.

Run with PYTHONPATH pointing at stubs generated from the seed's proto (`worker_pb2`, `worker_pb2_grpc`):

    python seed_worker_server.py --registry HOST:PORT [--heartbeat-interval SECONDS]

It serves the seed's WorkerService with the seed's two capabilities (plus `repeat_text`, whose parameter
uses the seed's short type name "int"), registers with the registry, heartbeats and registers again when a
heartbeat is answered success=false. Its updates carry none of our added fields (no sequence numbers).
Stdout lines, for the test to wait on:

    seed-worker WORKER_ID listening on HOST:PORT     (once, after the first registration)
    registered WORKER_ID                             (after every later registration)

`input` equal to "reject me" makes ExecuteTask refuse the task. SIGTERM/SIGINT stop it with exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc
import worker_pb2  # type: ignore[import-not-found]
import worker_pb2_grpc  # type: ignore[import-not-found]

RPC_TIMEOUT_SECONDS = 5.0
WORK_SECONDS = 0.05
TERMINAL = {worker_pb2.TASK_STATUS_COMPLETED, worker_pb2.TASK_STATUS_FAILED, worker_pb2.TASK_STATUS_CANCELED}


def capabilities() -> list[Any]:
    param = worker_pb2.ToolParameter
    return [
        worker_pb2.ToolCapability(
            name="dummy_processor",
            description="A simple processor that converts input text to uppercase.",
            parameters=[
                param(name="input", type="string", description="The text to process.", required=True),
                param(name="language", type="string", description="Optional language hint.", required=False),
            ],
        ),
        worker_pb2.ToolCapability(
            name="error_simulator", description="A tool that always fails for testing error handling."
        ),
        worker_pb2.ToolCapability(
            name="repeat_text",
            description="Repeats a text.",
            parameters=[
                param(name="text", type="string", description="What to repeat.", required=True),
                param(name="times", type="int", description="How often.", required=True),
            ],
        ),
    ]


@dataclass
class TaskState:
    history: list[Any]
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def has_after(self, index: int) -> bool:
        return len(self.history) > index + 1

    async def publish(self, status: int, output: Any = None, error: str = "") -> None:
        result = worker_pb2.TaskResult(
            task_id=self.history[0].task_id,
            status=status,
            output_json=json.dumps(output) if output is not None else "",
            error_message=error,
        )
        result.completed_at.GetCurrentTime()
        async with self.changed:
            self.history.append(result)
            self.changed.notify_all()


class SeedWorkerServicer(worker_pb2_grpc.WorkerServiceServicer):  # type: ignore[misc]
    def __init__(self, info: Any) -> None:
        self.info = info
        self.tasks: dict[str, TaskState] = {}
        self.running: set[asyncio.Task[None]] = set()

    async def GetWorkerInfo(self, request: Any, context: Any) -> Any:
        return self.info

    async def ExecuteTask(self, request: Any, context: Any) -> Any:
        task = request.task
        names = {c.name for c in self.info.capabilities}
        if task.capability_name not in names:
            message = f"Capability '{task.capability_name}' not supported by this worker."
            return worker_pb2.ExecuteTaskResponse(task_id=task.task_id, accepted=False, message=message)
        params = {p.key: json.loads(p.value_json) for p in task.parameters}
        if params.get("input") == "reject me":
            message = "this seed worker refuses 'reject me'"
            return worker_pb2.ExecuteTaskResponse(task_id=task.task_id, accepted=False, message=message)
        pending = worker_pb2.TaskResult(task_id=task.task_id, status=worker_pb2.TASK_STATUS_PENDING)
        pending.completed_at.GetCurrentTime()
        state = self.tasks[task.task_id] = TaskState([pending])
        job = asyncio.create_task(self.run(state, task.capability_name, params))
        self.running.add(job)
        job.add_done_callback(self.running.discard)
        return worker_pb2.ExecuteTaskResponse(task_id=task.task_id, accepted=True)

    async def run(self, state: TaskState, capability: str, params: dict[str, Any]) -> None:
        await state.publish(worker_pb2.TASK_STATUS_RUNNING)
        await asyncio.sleep(WORK_SECONDS)
        if capability == "dummy_processor":
            text = str(params.get("input", "default_input"))
            output = {"result": f"Processed: {text.upper()}", "worker": self.info.name}
            await state.publish(worker_pb2.TASK_STATUS_COMPLETED, output)
        elif capability == "repeat_text":
            await state.publish(worker_pb2.TASK_STATUS_COMPLETED, params["text"] * int(params["times"]))
        else:
            await state.publish(worker_pb2.TASK_STATUS_FAILED, error="Simulated error during task execution.")

    async def StreamTaskStatus(self, request: Any, context: Any) -> Any:
        state = self.tasks.get(request.task_id)
        if state is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Task {request.task_id} not found.")
            return
        index = len(state.history) - 1  # the current state first, then every change
        while True:
            result = state.history[index]
            yield worker_pb2.StreamTaskStatusResponse(result=result)
            if result.status in TERMINAL:
                return
            async with state.changed:
                await state.changed.wait_for(partial(state.has_after, index))
            index += 1


async def membership(registry: Any, info: Any, interval: float, ready: asyncio.Event) -> None:
    registered = False
    while True:
        try:
            if not registered:
                response = await registry.RegisterWorker(
                    worker_pb2.RegisterWorkerRequest(worker_info=info), timeout=RPC_TIMEOUT_SECONDS
                )
                registered = response.success
                if registered:
                    if ready.is_set():
                        print(f"registered {info.worker_id}", flush=True)
                    ready.set()
            else:
                beat = await registry.WorkerHeartbeat(
                    worker_pb2.HeartbeatRequest(worker_id=info.worker_id, current_load=0),
                    timeout=RPC_TIMEOUT_SECONDS,
                )
                registered = beat.success  # the seed's only way to say "I do not know you"
        except grpc.aio.AioRpcError as exc:
            print(f"seed worker: registry call failed: {exc.code().name}", file=sys.stderr, flush=True)
        await asyncio.sleep(interval)


async def serve(registry_address: str, interval: float) -> None:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    info = worker_pb2.WorkerInfo(
        worker_id=str(uuid.uuid4()),
        name="seed-only-worker",
        version="1.0.0",
        address=f"127.0.0.1:{port}",
        tags=["python", "seed"],
        capabilities=capabilities(),
    )
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(SeedWorkerServicer(info), server)
    await server.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    ready = asyncio.Event()
    async with grpc.aio.insecure_channel(registry_address) as channel:
        beating = asyncio.create_task(membership(worker_pb2_grpc.RegistryServiceStub(channel), info, interval, ready))
        await ready.wait()
        print(f"seed-worker {info.worker_id} listening on {info.address}", flush=True)
        await stop.wait()
        beating.cancel()
    await server.stop(1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--heartbeat-interval", type=float, default=0.2)
    args = parser.parse_args()
    asyncio.run(serve(args.registry, args.heartbeat_interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
