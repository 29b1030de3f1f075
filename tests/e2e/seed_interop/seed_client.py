"""A client that knows only the seed's worker.proto, driving our registry and one of our workers.

Run with PYTHONPATH pointing at stubs generated from the seed's proto (`worker_pb2`, `worker_pb2_grpc`):

    python seed_client.py --registry HOST:PORT --worker HOST:PORT

It asks the worker for its description (GetWorkerInfo), registers it with the registry, heartbeats, lists it
(GetAvailableWorkers, GetWorkerById), sends it the seed's three tasks and streams their results, the way
the seed's orchestrator does. It prints one JSON object on stdout with everything it saw and exits 0; any
RPC error ends it with exit 1 and the error on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

import grpc
import worker_pb2  # type: ignore[import-not-found]
import worker_pb2_grpc  # type: ignore[import-not-found]
from google.protobuf.empty_pb2 import Empty

RPC_TIMEOUT_SECONDS = 10.0
TERMINAL = {worker_pb2.TASK_STATUS_COMPLETED, worker_pb2.TASK_STATUS_FAILED, worker_pb2.TASK_STATUS_CANCELED}


def run_task(worker: Any, worker_id: str, capability: str, params: dict[str, Any], task_id: str) -> dict[str, Any]:
    task = worker_pb2.Task(
        task_id=task_id,
        worker_id=worker_id,
        capability_name=capability,
        parameters=[worker_pb2.TaskParameter(key=k, value_json=json.dumps(v)) for k, v in params.items()],
        timeout_seconds=30,
    )
    task.created_at.GetCurrentTime()
    response = worker.ExecuteTask(worker_pb2.ExecuteTaskRequest(task=task), timeout=RPC_TIMEOUT_SECONDS)
    seen: dict[str, Any] = {"accepted": response.accepted, "message": response.message, "statuses": []}
    if not response.accepted:
        return seen
    stream = worker.StreamTaskStatus(worker_pb2.GetTaskStatusRequest(task_id=task_id), timeout=30)
    for update in stream:
        result = update.result
        seen["statuses"].append(worker_pb2.TaskStatus.Name(result.status))
        if result.status in TERMINAL:
            seen["task_id"] = result.task_id
            seen["output"] = json.loads(result.output_json) if result.output_json else None
            seen["error_message"] = result.error_message
            break
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--worker", required=True)
    args = parser.parse_args()

    report: dict[str, Any] = {}
    with grpc.insecure_channel(args.registry) as reg_channel, grpc.insecure_channel(args.worker) as w_channel:
        registry = worker_pb2_grpc.RegistryServiceStub(reg_channel)
        worker = worker_pb2_grpc.WorkerServiceStub(w_channel)

        info = worker.GetWorkerInfo(Empty(), timeout=RPC_TIMEOUT_SECONDS)
        if not info.worker_id:
            info.worker_id = str(uuid.uuid4())  # the seed's registry does the same for an empty id
        report["worker_info"] = {
            "worker_id": info.worker_id,
            "name": info.name,
            "address": info.address,
            "capabilities": sorted(c.name for c in info.capabilities),
        }

        registered = registry.RegisterWorker(
            worker_pb2.RegisterWorkerRequest(worker_info=info), timeout=RPC_TIMEOUT_SECONDS
        )
        report["register"] = {"success": registered.success, "message": registered.message}
        beat = registry.WorkerHeartbeat(
            worker_pb2.HeartbeatRequest(worker_id=info.worker_id, current_load=0), timeout=RPC_TIMEOUT_SECONDS
        )
        report["heartbeat"] = {"success": beat.success}
        unknown = registry.WorkerHeartbeat(
            worker_pb2.HeartbeatRequest(worker_id="no-such-worker"), timeout=RPC_TIMEOUT_SECONDS
        )
        report["heartbeat_unknown"] = {"success": unknown.success}

        listed = list(registry.GetAvailableWorkers(Empty(), timeout=RPC_TIMEOUT_SECONDS))
        report["listed"] = [
            {
                "worker_id": w.worker_id,
                "address": w.address,
                "capabilities": sorted(c.name for c in w.capabilities),
            }
            for w in listed
        ]
        by_id = registry.GetWorkerById(
            worker_pb2.GetWorkerByIdRequest(worker_id=info.worker_id), timeout=RPC_TIMEOUT_SECONDS
        )
        report["by_id"] = {"worker_id": by_id.worker_id, "address": by_id.address}
        try:
            registry.GetWorkerById(
                worker_pb2.GetWorkerByIdRequest(worker_id="no-such-worker"), timeout=RPC_TIMEOUT_SECONDS
            )
            report["by_unknown_id"] = "OK"
        except grpc.RpcError as exc:
            report["by_unknown_id"] = exc.code().name

        # The seed's orchestrator scenarios, sent straight to the worker the registry listed.
        report["success"] = run_task(
            worker, info.worker_id, "dummy_processor", {"input": "hello world"}, str(uuid.uuid4())
        )
        report["failure"] = run_task(worker, info.worker_id, "error_simulator", {}, str(uuid.uuid4()))
        report["unsupported"] = run_task(
            worker, info.worker_id, "unsupported_tool", {"data": [1, 2, 3]}, str(uuid.uuid4())
        )

        # A late subscriber: the finished task still streams its final state.
        late = worker.StreamTaskStatus(
            worker_pb2.GetTaskStatusRequest(task_id=report["success"]["task_id"]), timeout=RPC_TIMEOUT_SECONDS
        )
        report["late"] = [worker_pb2.TaskStatus.Name(u.result.status) for u in late]

    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as exc:
        print(f"seed client: RPC failed: {exc}", file=sys.stderr)
        sys.exit(1)
