"""Text from the wire: JSON is strict (no NaN, no lone surrogate) and numbers in text are ASCII digits only.

A lone UTF-16 surrogate (`"\\ud800"` in JSON text) decodes to a Python str that no UTF-8 encoder, store or
worker takes: it is refused where it enters (a submission, on the embedded engine and through the daemon
alike; a registration's schema), and a worker output holding one fails its task instead of its readers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.orchestrator.scripted_worker import ScriptedWorker, result
from worker_abstraction import (
    AsyncOrchestrator,
    InvalidParametersError,
    OrchestratorServer,
    RegistryServer,
    RemoteOrchestrator,
    TaskFailedError,
    TaskStatus,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.codec import ascii_decimal, decode_params, encode_params, json_problem

pytestmark = pytest.mark.timeout(30)

LONE = ['"\\ud800"', '"a\\udfffb"', '{"\\udc00": 1}', '["ok", ["\\ud83d"]]']
PAIRED = ['"\\ud83d\\ude00"', '"\\\\ud800"', '"plain"']  # (an astral character; an escaped backslash)


@pytest.mark.parametrize("text", LONE)
def test_a_lone_surrogate_in_json_text_is_refused_naming_the_parameter(text: str) -> None:
    with pytest.raises(InvalidParametersError) as refused:
        decode_params([("text", text)])
    assert len(refused.value.problems) == 1 and "'text'" in refused.value.problems[0]
    assert json_problem(text) is not None


@pytest.mark.parametrize("text", PAIRED)
def test_paired_surrogates_and_escaped_backslashes_are_text(text: str) -> None:
    assert json_problem(text) is None
    assert decode_params([("text", text)])


@pytest.mark.parametrize("text", ["NaN", "-Infinity", "[1, Infinity]"])
def test_nan_and_infinity_are_not_json(text: str) -> None:
    with pytest.raises(InvalidParametersError):
        decode_params([("x", text)])


def test_a_python_string_with_a_lone_surrogate_cannot_be_sent() -> None:
    with pytest.raises(InvalidParametersError) as refused:
        encode_params({"text": "\ud800", "fine": "😀", "nested": {"k": ["\udc00"]}})
    assert len(refused.value.problems) == 2
    assert encode_params({"fine": "😀", "path": "C:\\ud"}) == (("fine", '"\\ud83d\\ude00"'), ("path", '"C:\\\\ud"'))


@pytest.mark.parametrize("text", ["١٢", "１２", "12 ", " 12", "+12", "-1", "1_000", "", "1234567890"])
def test_numbers_in_text_are_ascii_digits_only(text: str) -> None:
    assert ascii_decimal(text, max_digits=9) is None


def test_ascii_digits_are_numbers() -> None:
    assert [ascii_decimal(t, max_digits=9) for t in ("0", "7", "000000012", "999999999")] == [0, 7, 12, 999999999]


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[OrchestratorServer]:
    await start_worker()
    async with OrchestratorServer(registry.address, port=0) as server:
        await server.orchestrator.wait_for_workers("echo", timeout_seconds=5)
        yield server


async def test_a_lone_surrogate_is_refused_at_submission_on_every_path(
    registry: RegistryServer, daemon: OrchestratorServer
) -> None:
    async with AsyncOrchestrator(registry.address) as embedded:
        await embedded.wait_for_workers("echo", timeout_seconds=5)
        with pytest.raises(InvalidParametersError) as refused:
            await embedded.execute_task("echo", {"text": "\ud800"})
        assert "'text'" in refused.value.problems[0]
    async with RemoteOrchestrator(daemon.address) as remote:
        with pytest.raises(InvalidParametersError):
            await remote.execute_task("echo", {"text": "\ud800"})
    async with aio.insecure_channel(daemon.address) as channel:
        task = pb.Task(capability_name="echo", timeout_seconds=5)
        task.parameters.add(key="text", value_json='"\\ud800"')
        with pytest.raises(aio.AioRpcError) as call:
            await pb_grpc.OrchestratorServiceStub(channel).SubmitTask(pb.SubmitTaskRequest(task=task), timeout=5)
        assert call.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("token", ["١٢", "１２", " 12", "+1", "1e3", "9" * 10])
async def test_a_page_token_is_ascii_digits_only(daemon: OrchestratorServer, token: str) -> None:
    async with aio.insecure_channel(daemon.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        with pytest.raises(aio.AioRpcError) as call:
            await stub.ListTasks(pb.ListTasksRequest(page_token=token), timeout=5)
        assert call.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (await stub.ListTasks(pb.ListTasksRequest(page_token="12"), timeout=5)).tasks is not None


@pytest.mark.parametrize(
    ("schema", "address"),
    [('{"type": "string", "enum": ["\\ud800"]}', "127.0.0.1:9"), ('{"minimum": NaN}', "127.0.0.1:9"), ("", "h:١٢٣")],
    ids=["lone surrogate in a schema", "NaN in a schema", "unicode digits in a port"],
)
async def test_a_registration_with_unusable_text_is_refused(
    registry: RegistryServer, schema: str, address: str
) -> None:
    info = pb.WorkerInfo(worker_id="w-text", name="w", address=address)
    info.capabilities.add(name="c").parameters.add(name="p", type="string", json_schema=schema)
    async with aio.insecure_channel(registry.address) as channel:
        with pytest.raises(aio.AioRpcError) as call:
            await pb_grpc.RegistryServiceStub(channel).RegisterWorker(pb.RegisterWorkerRequest(worker_info=info))
        assert call.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_an_output_with_a_lone_surrogate_fails_its_task_instead_of_its_readers(registry: RegistryServer) -> None:
    async def lone_output(task: pb.Task) -> AsyncIterator[pb.TaskResult]:
        yield result(task, TaskStatus.RUNNING)
        yield result(task, TaskStatus.COMPLETED, output_json='{"text": "\\ud800"}')

    worker = await ScriptedWorker("seed-like", "job", lone_output).start(registry.address)
    try:
        async with AsyncOrchestrator(registry.address) as orchestrator:
            await orchestrator.wait_for_workers("job", timeout_seconds=5)
            handle = await orchestrator.execute_task("job", {})
            with pytest.raises(TaskFailedError) as failed:
                await handle.result(timeout_seconds=5)
            assert failed.value.error_type == "InvalidOutput"
    finally:
        await worker.stop()
