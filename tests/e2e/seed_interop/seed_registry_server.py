"""A registry that knows only the seed's worker.proto, written as a grpc.aio server on the seed's stubs.

Run with PYTHONPATH pointing at stubs generated from the seed's proto (`worker_pb2`, `worker_pb2_grpc`):

    python seed_registry_server.py

It serves the seed's four RegistryService RPCs the way the seed's registry does (an unknown worker's
heartbeat is answered success=false); every RPC we added (DeregisterWorker, WatchWorkers) is answered
UNIMPLEMENTED. SIGUSR1 makes it forget every worker, as a restarted registry would. Stdout lines, for the test
to wait on:

    seed-registry listening on HOST:PORT
    registered WORKER_ID ADDRESS
    heartbeat WORKER_ID unknown          (a heartbeat answered success=false)
    listed N                             (a GetAvailableWorkers call streamed N workers)
    unimplemented /package.Service/Method
    forgot N                             (after SIGUSR1)

SIGTERM/SIGINT stop it with exit 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from typing import Any

import grpc
import worker_pb2  # type: ignore[import-not-found]
import worker_pb2_grpc  # type: ignore[import-not-found]


def say(line: str) -> None:
    print(line, flush=True)


class SeedRegistryServicer(worker_pb2_grpc.RegistryServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.workers: dict[str, Any] = {}

    async def RegisterWorker(self, request: Any, context: Any) -> Any:
        info = request.worker_info
        if not info.worker_id:
            info.worker_id = str(uuid.uuid4())
        info.last_heartbeat.GetCurrentTime()
        self.workers[info.worker_id] = info
        say(f"registered {info.worker_id} {info.address}")
        return worker_pb2.RegisterWorkerResponse(success=True, message="Worker registered successfully.")

    async def WorkerHeartbeat(self, request: Any, context: Any) -> Any:
        info = self.workers.get(request.worker_id)
        if info is None:
            say(f"heartbeat {request.worker_id} unknown")
            return worker_pb2.HeartbeatResponse(success=False, message="Unknown worker_id.")
        info.last_heartbeat.GetCurrentTime()
        return worker_pb2.HeartbeatResponse(success=True, message="Heartbeat acknowledged.")

    async def GetAvailableWorkers(self, request: Any, context: Any) -> Any:
        workers = list(self.workers.values())
        for info in workers:
            yield info
        say(f"listed {len(workers)}")

    async def GetWorkerById(self, request: Any, context: Any) -> Any:
        info = self.workers.get(request.worker_id)
        if info is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Worker with ID {request.worker_id} not found.")
        return info

    def forget(self) -> None:
        count = len(self.workers)
        self.workers.clear()
        say(f"forgot {count}")


class LogUnimplemented(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """Reached only by methods the seed servicer lacks; returning None makes gRPC answer UNIMPLEMENTED."""

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> None:
        say(f"unimplemented {handler_call_details.method}")


async def serve() -> None:
    servicer = SeedRegistryServicer()
    server = grpc.aio.server()
    worker_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((LogUnimplemented(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, servicer.forget)

    say(f"seed-registry listening on 127.0.0.1:{port}")
    await stop.wait()
    await server.stop(1.0)


def main() -> int:
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
