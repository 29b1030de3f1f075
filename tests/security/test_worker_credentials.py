"""What the daemon sends to a worker is good for that worker alone: a principal with the worker role that
registers a worker of its own and captures every call made to it can replay nothing anywhere else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc import aio

from tests.conftest import ToolWorker
from worker_abstraction import (
    AsyncOrchestrator,
    OrchestratorServer,
    RegistryServer,
    RemoteOrchestrator,
    TaskStatus,
    bearer,
    signing,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.auth import Authenticator, TokenFile
from worker_abstraction.errors import PermissionDeniedError, TaskRejectedError
from worker_abstraction.orchestrator.edge.link import WorkerLinks

DAEMON = "daemon-token-0123456789"  # the in-process parts' token: the daemon (and the honest worker)
ROGUE = "rogue-worker-token-01234"
CLIENT = "client-token-0123456789"
FILE = f"""
[[principal]]
name = "orchestrator/daemon"
roles = ["orchestrator", "worker"]
token = "{DAEMON}"

[[principal]]
name = "worker/rogue"
roles = ["worker"]
token_sha256 = "{__import__("hashlib").sha256(ROGUE.encode()).hexdigest()}"

[[principal]]
name = "client/alice"
roles = ["client"]
token = "{CLIENT}"
"""


class Capturing(pb_grpc.WorkerServiceServicer):
    """A worker of the rogue principal's: it answers the daemon's probe and keeps what the call carried."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.captured: list[tuple[str, str]] = []
        self.probed = asyncio.Event()

    async def GetWorkerInfo(self, request: empty_pb2.Empty, context: aio.ServicerContext) -> pb.WorkerInfo:  # type: ignore[type-arg]
        self.captured.extend((k, v) for k, v in context.invocation_metadata() or () if isinstance(v, str))
        self.probed.set()
        info = pb.WorkerInfo(worker_id="rogue", name="rogue", address=self.address)
        info.capabilities.add(name="echo")
        return info


@pytest.fixture
def daemon_token() -> Iterator[None]:
    bearer.use_token(DAEMON)
    yield
    bearer.use_token(None)


@pytest.fixture
async def stack(tmp_path: Path, daemon_token: None) -> AsyncIterator[tuple[str, str, str, Capturing]]:
    """A secured registry, an honest worker, a daemon, and a rogue worker registered by another principal."""
    path = tmp_path / "tokens.toml"
    path.write_text(FILE)
    checks = Authenticator(TokenFile(path, check_every_seconds=0))
    rogue_server = aio.server()
    rogue_port = rogue_server.add_insecure_port("127.0.0.1:0")
    rogue = Capturing(f"127.0.0.1:{rogue_port}")
    pb_grpc.add_WorkerServiceServicer_to_server(rogue, rogue_server)
    await rogue_server.start()
    async with RegistryServer(port=0, auth=checks) as registry:
        honest = ToolWorker(registry.address, heartbeat_interval_seconds=0.2, auth=Authenticator(TokenFile(path)))
        await honest.start()
        try:
            async with OrchestratorServer(registry.address, port=0, auth=checks) as daemon:
                yield registry.address, honest.address, daemon.address, rogue
        finally:
            await honest.stop(grace_seconds=0.5)
            await rogue_server.stop(None)


async def _register_rogue(registry: str, rogue: Capturing) -> None:
    info = pb.WorkerInfo(worker_id="rogue", name="rogue", address=rogue.address)
    info.capabilities.add(name="echo")
    async with aio.insecure_channel(registry) as channel:
        await pb_grpc.RegistryServiceStub(channel).RegisterWorker(
            pb.RegisterWorkerRequest(worker_info=info), metadata=(("authorization", f"Bearer {ROGUE}"),), timeout=5
        )


async def _code(address: str, method: str, request: object, authorization: str) -> grpc.StatusCode:
    async with aio.insecure_channel(address) as channel:
        call = channel.unary_unary(method, request_serializer=type(request).SerializeToString)  # type: ignore[attr-defined]
        try:
            await call(request, metadata=(("authorization", authorization),), timeout=5)
        except aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK


async def test_a_worker_that_captures_the_daemons_calls_can_replay_them_nowhere(
    stack: tuple[str, str, str, Capturing],
) -> None:
    registry, honest, daemon, rogue = stack
    await _register_rogue(registry, rogue)
    async with asyncio.timeout(10):
        await rogue.probed.wait()
    authorizations = [value for key, value in rogue.captured if key == "authorization"]
    assert authorizations, "the daemon's probe carried no credential at all"
    assert not any(DAEMON in value for key, value in rogue.captured), "the daemon's token reached a worker"
    task = pb.Task(task_id="replayed", capability_name="echo")
    task.parameters.add(key="text", value_json='"pwned"')
    replays = [
        (honest, "/worker_abstraction.WorkerService/ExecuteTask", pb.ExecuteTaskRequest(task=task)),
        (honest, "/worker_abstraction.WorkerService/GetWorkerInfo", empty_pb2.Empty()),
        (registry, "/worker_abstraction.RegistryService/GetAvailableWorkers", empty_pb2.Empty()),
        (daemon, "/worker_abstraction.OrchestratorService/SubmitTask", pb.SubmitTaskRequest(task=task)),
        (daemon, "/worker_abstraction.OrchestratorService/ListTasks", pb.ListTasksRequest()),
    ]
    for authorization in authorizations:
        for address, method, request in replays:
            code = await _code(address, method, request, authorization)
            assert code is grpc.StatusCode.UNAUTHENTICATED, (method, code)


async def test_the_honest_worker_still_runs_the_daemons_tasks(stack: tuple[str, str, str, Capturing]) -> None:
    _, _, daemon, _ = stack
    as_alice = lambda address: aio.insecure_channel(address, interceptors=bearer.bearer_interceptors(CLIENT))  # noqa: E731
    async with RemoteOrchestrator(daemon, channel_factory=as_alice) as remote:
        await remote.wait_for_workers("echo", timeout_seconds=10)
        handle = await remote.execute_task("echo", {"text": "hi"})
        assert await handle.result(timeout_seconds=10) == {"text": "hi"}


def test_a_credential_is_refused_for_another_audience_expired_or_forged() -> None:
    now = [1_000_000.0]
    signer = signing.Signer(DAEMON, clock=lambda: now[0])
    keys = {signer.key_id: signing.public_key(DAEMON)}
    verifier = signing.Verifier(keys.get, clock=lambda: now[0])
    verifier.audiences.add("10.0.0.7:5000")
    good = signer.credential("10.0.0.7:5000").removeprefix(f"{signing.SCHEME} ")
    assert verifier.key_id(good) == signer.key_id
    with pytest.raises(ValueError):
        verifier.key_id(signer.credential("10.0.0.8:5000").removeprefix(f"{signing.SCHEME} "))
    forged = signing.Signer(ROGUE, clock=lambda: now[0]).credential("10.0.0.7:5000").removeprefix("WA-Signed ")
    with pytest.raises(ValueError):
        verifier.key_id(forged)  # another key, unknown here
    payload, _, signature = good.partition(".")
    with pytest.raises(ValueError):
        verifier.key_id(payload + "." + signature[::-1])
    later = signing.Verifier(keys.get, clock=lambda: now[0] + signing.LIFETIME_SECONDS + 1)
    later.audiences.add("10.0.0.7:5000")
    with pytest.raises(ValueError):
        later.key_id(good)


def _as_alice(address: str) -> aio.Channel:
    return aio.insecure_channel(address, interceptors=bearer.signed_interceptors(CLIENT, address))


async def test_an_orchestrator_whose_credentials_workers_refuse_is_told_at_once(
    stack: tuple[str, str, str, Capturing],
) -> None:
    registry = stack[0]
    orchestrator = AsyncOrchestrator(registry, links=WorkerLinks(channel_factory=_as_alice))
    async with orchestrator:
        with pytest.raises(PermissionDeniedError):
            await orchestrator.wait_for_workers("echo", timeout_seconds=10)
        with pytest.raises(PermissionDeniedError):
            await orchestrator.execute_task("echo", {"text": "hi"})


async def test_a_waiting_task_ends_when_the_worker_it_waits_for_refuses_the_orchestrator(
    tmp_path: Path, daemon_token: None
) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(FILE)
    checks = Authenticator(TokenFile(path))
    async with RegistryServer(port=0, auth=checks) as registry:
        orchestrator = AsyncOrchestrator(
            registry.address, links=WorkerLinks(channel_factory=_as_alice), queue_without_workers=True
        )
        async with orchestrator:
            handle = await orchestrator.execute_task("echo", {"text": "hi"})
            assert handle.status is TaskStatus.PENDING
            async with ToolWorker(registry.address, heartbeat_interval_seconds=0.2, auth=checks):
                with pytest.raises(TaskRejectedError):
                    await handle.result(timeout_seconds=10)
