"""The public surface is pinned, and the blocking twins mirror the async ones."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import worker_abstraction
from worker_abstraction import (
    AsyncOrchestrator,
    AsyncOrchestratorAPI,
    AsyncTaskHandle,
    FailureOrigin,
    Orchestrator,
    RemoteOrchestrator,
    TaskHandle,
    TaskOptions,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.options import TaskOptionFields
from worker_abstraction.types import TaskQueryFields, TaskStatus, WorkerState

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_pinned() -> None:
    assert worker_abstraction.__all__ == [
        "Approval",
        "AsyncOrchestrator",
        "AsyncOrchestratorAPI",
        "AsyncTaskHandle",
        "Attempt",
        "BaseWorker",
        "BindError",
        "CapabilitySpec",
        "ChunksDroppedError",
        "DeadLetter",
        "FailureOrigin",
        "InputAnswer",
        "InputExchange",
        "InputRequest",
        "InputTimeoutError",
        "InvalidAnswerError",
        "InvalidCapabilityError",
        "InvalidParametersError",
        "InvalidRequestError",
        "InvalidTLSConfigError",
        "InvalidTaskOptionsError",
        "InvalidWorkerInfoError",
        "LoadReport",
        "NoWorkerError",
        "Orchestrator",
        "OrchestratorServer",
        "OrchestratorUnavailableError",
        "OutputChunk",
        "ParameterSpec",
        "PermissionDeniedError",
        "QueueFullError",
        "RateLimitedError",
        "RegistryClient",
        "RegistryServer",
        "RegistryUnavailableError",
        "RemoteOrchestrator",
        "RetryPolicy",
        "StoreInUseError",
        "TLSConfig",
        "TaskCanceledError",
        "TaskContext",
        "TaskError",
        "TaskExistsError",
        "TaskFailedError",
        "TaskFailure",
        "TaskHandle",
        "TaskNotFoundError",
        "TaskNotWaitingError",
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
        "schema_capability",
    ]
    assert sorted(worker_abstraction.__all__) == worker_abstraction.__all__


def test_every_error_shares_one_root() -> None:
    errors = [getattr(worker_abstraction, n) for n in worker_abstraction.__all__ if n.endswith("Error")]
    assert all(issubclass(e, worker_abstraction.WorkerAbstractionError) for e in errors)


def _public_methods(cls: type) -> dict[str, Any]:
    def callable_member(member: Any) -> bool:
        return inspect.isfunction(member) or inspect.ismethod(member)

    return {name: member for name, member in inspect.getmembers(cls, callable_member) if not name.startswith("_")}


def _shape(function: Any) -> list[tuple[str, Any, Any, str]]:
    return [(p.name, p.kind, p.default, str(p.annotation)) for p in inspect.signature(function).parameters.values()]


def _kind(function: Any) -> str:
    if inspect.isasyncgenfunction(function):
        return "async iterator"
    if inspect.iscoroutinefunction(function):
        return "coroutine"
    return "plain"


CONTRACT = _public_methods(AsyncOrchestratorAPI)


def test_both_async_backends_offer_exactly_the_contract() -> None:
    assert set(CONTRACT) >= {"execute_task", "execute_many", "watch", "cancel", "task", "tasks", "task_page"}
    assert _kind(CONTRACT["execute_task"]) == "coroutine" and _kind(CONTRACT["workers"]) == "coroutine"
    for backend, extras in ((AsyncOrchestrator, {"create"}), (RemoteOrchestrator, set())):
        assert AsyncOrchestratorAPI in backend.__mro__  # the shared calls are written once, in the contract
        methods = _public_methods(backend)
        assert set(methods) - extras == set(CONTRACT), backend.__name__
        for name, declared in CONTRACT.items():
            implemented = methods[name]
            assert _shape(implemented) == _shape(declared), f"{backend.__name__}.{name}"
            assert inspect.signature(implemented).return_annotation == inspect.signature(declared).return_annotation
            assert _kind(implemented) == _kind(declared), f"{backend.__name__}.{name} is {_kind(implemented)}"


def test_the_blocking_twin_offers_the_contract_with_the_same_parameters() -> None:
    methods = _public_methods(Orchestrator)
    lifecycle = {"start", "aclose"}  # the blocking twin starts in its constructor and has close()
    assert set(methods) == (set(CONTRACT) - lifecycle) | {"connect", "close"}
    for name, declared in CONTRACT.items():
        if name in lifecycle:
            continue
        assert _shape(methods[name]) == _shape(declared), f"Orchestrator.{name}"
        assert _kind(methods[name]) == "plain", f"Orchestrator.{name}"


def test_the_blocking_handle_mirrors_the_async_handle() -> None:
    for name in ("result", "wait", "done", "cancel"):
        assert _shape(getattr(TaskHandle, name)) == _shape(getattr(AsyncTaskHandle, name)), name
        assert _kind(getattr(TaskHandle, name)) == "plain"


def test_keyword_options_are_exactly_the_value_objects_fields() -> None:
    assert set(TaskOptionFields.__annotations__) == {f.name for f in dataclasses.fields(TaskOptions)}
    assert set(TaskQueryFields.__annotations__) == {
        "status",
        "capability",
        "worker_id",
        "since",
        "until",
        "task_id_prefix",
        "limit",
        "offset",
    }


def test_failure_origin_mirrors_the_contract_member_for_member() -> None:
    assert {o.name: o.value for o in FailureOrigin} == {
        name.removeprefix("FAILURE_ORIGIN_"): value for name, value in pb.FailureOrigin.items()
    }


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
