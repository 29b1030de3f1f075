"""The public surface is pinned, and the blocking twins mirror the async ones."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import worker_abstraction
from worker_abstraction import AsyncOrchestrator, AsyncTaskHandle, Orchestrator, TaskHandle
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.types import TaskStatus, WorkerState

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_pinned() -> None:
    assert worker_abstraction.__all__ == [
        "AsyncOrchestrator",
        "AsyncOrchestratorAPI",
        "AsyncTaskHandle",
        "Attempt",
        "BaseWorker",
        "BindError",
        "CapabilitySpec",
        "DeadLetter",
        "FailureOrigin",
        "InvalidCapabilityError",
        "InvalidParametersError",
        "InvalidTaskOptionsError",
        "InvalidWorkerInfoError",
        "LoadReport",
        "NoWorkerError",
        "Orchestrator",
        "OrchestratorServer",
        "OrchestratorUnavailableError",
        "ParameterSpec",
        "QueueFullError",
        "RegistryClient",
        "RegistryServer",
        "RegistryUnavailableError",
        "RemoteOrchestrator",
        "RetryPolicy",
        "StoreInUseError",
        "TaskCanceledError",
        "TaskContext",
        "TaskError",
        "TaskExistsError",
        "TaskFailedError",
        "TaskFailure",
        "TaskHandle",
        "TaskNotFoundError",
        "TaskOptions",
        "TaskRecord",
        "TaskRejectedError",
        "TaskStatus",
        "TaskTimeoutError",
        "TaskUpdate",
        "WorkerAbstractionError",
        "WorkerHealth",
        "WorkerInfo",
        "WorkerNotFoundError",
        "WorkerState",
        "capability",
    ]
    assert sorted(worker_abstraction.__all__) == worker_abstraction.__all__


def test_every_error_shares_one_root() -> None:
    errors = [getattr(worker_abstraction, n) for n in worker_abstraction.__all__ if n.endswith("Error")]
    assert all(issubclass(e, worker_abstraction.WorkerAbstractionError) for e in errors)


def test_sync_twins_have_the_async_signatures() -> None:
    for sync_cls, async_cls, methods in [
        (
            Orchestrator,
            AsyncOrchestrator,
            [
                "execute_task",
                "wait_for_workers",
                "workers",
                "queue_depths",
                "cancel",
                "dead_letters",
                "requeue_dead_letter",
                "purge_dead_letters",
                "task",
                "tasks",
                "worker_health",
            ],
        ),
        (TaskHandle, AsyncTaskHandle, ["result", "wait", "done", "cancel"]),
    ]:
        for name in methods:
            sync_params = list(inspect.signature(getattr(sync_cls, name)).parameters.values())
            async_params = list(inspect.signature(getattr(async_cls, name)).parameters.values())
            assert [(p.name, p.kind, p.default) for p in sync_params] == [
                (p.name, p.kind, p.default) for p in async_params
            ], f"{sync_cls.__name__}.{name}"


def test_task_status_mirrors_the_contract_member_for_member() -> None:
    assert {s.name: s.value for s in TaskStatus} == {
        name.removeprefix("TASK_STATUS_"): value for name, value in pb.TaskStatus.items()
    }


def test_worker_state_mirrors_the_contract_member_for_member() -> None:
    assert {s.name: s.value for s in WorkerState} == {
        name.removeprefix("WORKER_STATE_"): value for name, value in pb.WorkerState.items()
    }


def test_no_public_signature_mentions_protobuf() -> None:
    made_by_the_library = {"AsyncTaskHandle", "TaskHandle"}  # users never construct handles
    for name in worker_abstraction.__all__:
        obj = getattr(worker_abstraction, name)
        members = [obj]
        if inspect.isclass(obj):
            members = [m for n, m in inspect.getmembers(obj, inspect.isfunction) if not n.startswith("_")]
            if name not in made_by_the_library:
                members.append(obj)
        for member in members:
            try:
                text = str(inspect.signature(member))
            except (TypeError, ValueError):
                continue
            assert not re.search(r"pb2|_proto|\bpb(_grpc)?\.", text), f"{name}: {text}"


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
