"""The caller's session with the daemon: one stream for every submission and update, resumed after a break,
and the unary calls for a daemon that has no sessions."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.conftest import Gates, eventually
from worker_abstraction import (
    InvalidParametersError,
    RegistryServer,
    RemoteOrchestrator,
    TaskNotFoundError,
    TaskStatus,
    WorkerAbstractionError,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer
from worker_abstraction.orchestrator.daemon.servicer import OrchestratorServicer
from worker_abstraction.stores.sqlite import SqliteTaskStore
from worker_abstraction.stores.tasks import Stored

pytestmark = pytest.mark.timeout(60)


def _name(details: Any) -> str:
    method = details.method.decode() if isinstance(details.method, bytes) else details.method
    return str(method).rsplit("/", 1)[-1]


class _CountStreams(aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, calls: dict[str, int]) -> None:
        self.calls = calls

    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        self.calls[_name(details)] = self.calls.get(_name(details), 0) + 1
        return await continuation(details, request_iterator)


class _CountUnary(aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, calls: dict[str, int]) -> None:
        self.calls = calls

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.calls[_name(details)] = self.calls.get(_name(details), 0) + 1
        return await continuation(details, request)


class _CountWatches(aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, calls: dict[str, int]) -> None:
        self.calls = calls

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self.calls[_name(details)] = self.calls.get(_name(details), 0) + 1
        return await continuation(details, request)


async def test_many_tasks_share_one_stream_and_errors_keep_their_class(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    calls: dict[str, int] = {}
    counters = [_CountStreams(calls), _CountUnary(calls), _CountWatches(calls)]
    async with OrchestratorServer(registry.address, port=0) as server:
        channel = lambda address: aio.insecure_channel(address, interceptors=counters)  # noqa: E731
        async with RemoteOrchestrator(server.address, channel_factory=channel) as remote:
            await remote.wait_for_workers("echo", timeout_seconds=5)
            handles = await asyncio.gather(*(remote.execute_task("echo", {"text": str(i)}) for i in range(200)))
            outputs = await asyncio.gather(*(h.result(timeout_seconds=10) for h in handles))
            assert outputs == [{"text": str(i)} for i in range(200)]
            assert [u.status for u in handles[0].updates][-1] is TaskStatus.COMPLETED
            with pytest.raises(InvalidParametersError) as refused:
                await remote.execute_task("echo", {"text": 1, "nope": 2})
            assert len(refused.value.problems) == 2
    assert calls.get("OpenSession") == 1
    assert "SubmitTask" not in calls and "WatchTask" not in calls


class NoSessions(OrchestratorServicer):
    """A daemon from before sessions: OpenSession is UNIMPLEMENTED."""

    async def OpenSession(self, request_iterator: Any, context: Any) -> AsyncIterator[pb.SessionResponse]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        yield pb.SessionResponse()  # pragma: no cover


async def test_a_daemon_without_sessions_is_used_through_the_unary_calls(
    registry: RegistryServer, start_worker: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_worker()
    monkeypatch.setattr("worker_abstraction.orchestrator.daemon.server.OrchestratorServicer", NoSessions)
    async with OrchestratorServer(registry.address, port=0) as server, RemoteOrchestrator(server.address) as remote:
        await remote.wait_for_workers("echo", timeout_seconds=5)
        handle = await remote.execute_task("echo", {"text": "old"})
        assert await handle.result(timeout_seconds=5) == {"text": "old"}
        again = await remote.watch(handle.task_id)
        assert (await again.wait(timeout_seconds=5)).status is TaskStatus.COMPLETED


async def test_a_followed_task_is_followed_again_after_the_daemon_restarts(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates, tmp_path: Any
) -> None:
    await start_worker()
    store = str(tmp_path / "tasks.db")
    first = OrchestratorServer(registry.address, port=0, store_path=store)
    await first.start()
    async with RemoteOrchestrator(first.address) as remote:
        await remote.wait_for_workers("wait_for", timeout_seconds=5)
        handle = await remote.execute_task("wait_for", {"name": "across"})
        await asyncio.wait_for(_running(handle), 5)
        await first.stop(None)  # the session breaks while the task runs on its worker
        second = OrchestratorServer(registry.address, port=first.port, store_path=store)
        await second.start()
        try:
            gates.open("across")
            assert await handle.result(timeout_seconds=15) == "across"
        finally:
            await second.stop(None)


async def test_a_task_the_restarted_daemon_does_not_know_ends_the_handle_with_not_found(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker()
    first = OrchestratorServer(registry.address, port=0)  # memory only: a restart forgets everything
    await first.start()
    async with RemoteOrchestrator(first.address) as remote:
        await remote.wait_for_workers("wait_for", timeout_seconds=5)
        handle = await remote.execute_task("wait_for", {"name": "forgotten"})
        await first.stop(None)
        second = OrchestratorServer(registry.address, port=first.port)
        await second.start()
        try:
            with pytest.raises(TaskNotFoundError):
                await handle.result(timeout_seconds=15)
        finally:
            gates.open("forgotten")
            await second.stop(None)


async def _running(handle: Any) -> None:
    async for update in handle:
        if update.status is TaskStatus.RUNNING:
            return


class _RawSession:
    """OpenSession as a program built from the proto sees it: every message as the daemon sent it."""

    def __init__(self, channel: aio.Channel) -> None:
        self.call = channel.stream_stream(
            "/worker_abstraction.OrchestratorService/OpenSession",
            request_serializer=pb.SessionRequest.SerializeToString,
            response_deserializer=pb.SessionResponse.FromString,
        )()
        self.messages: list[pb.SessionResponse] = []
        self.numbers = iter(range(1, 1_000_000))

    async def submit(self, capability: str, **params: str) -> int:
        submit = pb.SessionSubmit(request_id=next(self.numbers))
        submit.submit.task.capability_name = capability
        for key, value in params.items():
            submit.submit.task.parameters.add(key=key, value_json=f'"{value}"')
        await self.call.write(pb.SessionRequest(submits=[submit]))
        return submit.request_id

    async def read_until(self, found: Callable[[pb.SessionResponse], bool]) -> pb.SessionResponse:
        async with asyncio.timeout(10):
            while True:
                message = await self.call.read()
                assert isinstance(message, pb.SessionResponse), "the session ended"
                self.messages.append(message)
                if found(message):
                    return message

    async def task_of(self, request_id: int) -> str:
        message = await self.read_until(lambda m: any(a.request_id == request_id for a in m.acks))
        return next(a.response.task_id for a in message.acks if a.request_id == request_id)


def _ends(task_id: str) -> Callable[[pb.SessionResponse], bool]:
    return lambda message: any(u.task_id == task_id and u.status == pb.TASK_STATUS_COMPLETED for u in message.updates)


async def test_a_caller_that_stops_reading_is_disconnected_instead_of_growing_the_daemon(
    registry: RegistryServer, start_worker: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_worker()
    monkeypatch.setattr("worker_abstraction.orchestrator.daemon.session.MAX_BACKLOG_BYTES", 2**20)
    text = "x" * 2**16  # echo returns it: 100 tasks make about 6.5 MB of outputs, far past the budget
    async with OrchestratorServer(registry.address, port=0) as server, RemoteOrchestrator(server.address) as remote:
        await remote.wait_for_workers("echo", timeout_seconds=5)
        async with aio.insecure_channel(server.address) as channel:
            call = _RawSession(channel).call
            await call.read()  # ready
            submits = []
            for number in range(1, 101):
                submit = pb.SessionSubmit(request_id=number)
                submit.submit.task.capability_name = "echo"
                submit.submit.task.parameters.add(
                    key="text",
                    value_json=f'"{text}"',
                )
                submits.append(submit)
            await call.write(pb.SessionRequest(submits=submits))

            # ... and reads nothing while the daemon runs them: past 1 MiB waiting it ends the session and
            # drops what waited (what gRPC already buffered arrives first, then the status).
            async def all_done() -> bool:
                return len(await remote.tasks(status=TaskStatus.COMPLETED, limit=1000)) == 100

            await eventually(all_done, timeout_seconds=30, what="the daemon ran the 100 tasks")
            received = 0
            with pytest.raises(aio.AioRpcError) as ended:
                async with asyncio.timeout(10):
                    while True:
                        received += len((await call.read()).updates)
            assert received < 300  # not every update of the 100 tasks: the rest was dropped
            assert ended.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "stopped reading" in (
                ended.value.details() or ""
            )
        # The daemon goes on serving everyone else.
        handle = await remote.execute_task("echo", {"text": "after"})
        assert await handle.result(timeout_seconds=5) == {"text": "after"}


class _RefuseAcceptances(SqliteTaskStore):
    """A store that cannot write acceptances (a full disk, say)."""

    def accepted(
        self, task_id: str, task: bytes, options: str, *, then: Stored | None = None, **fields: Any
    ) -> asyncio.Future[None]:
        problem = sqlite3.OperationalError("database or disk is full")
        if then is not None:
            then(problem)
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failed.set_exception(problem)
        return failed


async def test_a_submission_the_store_cannot_keep_is_refused_and_nothing_of_it_stays(
    registry: RegistryServer, start_worker: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    await start_worker()
    monkeypatch.setattr("worker_abstraction.orchestrator.daemon.server.SqliteTaskStore", _RefuseAcceptances)
    server = OrchestratorServer(registry.address, port=0, store_path=str(tmp_path / "tasks.db"))
    async with server, RemoteOrchestrator(server.address) as remote:
        await remote.wait_for_workers("echo", timeout_seconds=5)
        for _ in range(2):  # the session stays usable after a refusal
            with pytest.raises(WorkerAbstractionError, match="internal error accepting the task"):
                await remote.execute_task("echo", {"text": "lost?"})
        with pytest.raises(WorkerAbstractionError, match="internal error accepting the task"):
            await remote.execute_task("echo", {"text": "keyed"}, idempotency_key="k-1")  # (the awaited way)
        assert await remote.tasks() == []


async def test_an_earlier_tasks_result_travels_with_the_next_ack_while_the_caller_submits(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates, monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_worker()
    monkeypatch.setattr(
        "worker_abstraction.orchestrator.daemon.session.UPDATE_HOLD_SECONDS", 60.0
    )  # only an ack ends it
    monkeypatch.setattr("worker_abstraction.orchestrator.daemon.session.SUBMITTING_SECONDS", 60.0)
    async with OrchestratorServer(registry.address, port=0) as server, RemoteOrchestrator(server.address) as remote:
        await remote.wait_for_workers("wait_for", timeout_seconds=5)
        async with aio.insecure_channel(server.address) as channel:
            session = _RawSession(channel)
            await session.call.read()  # ready
            older = await session.task_of(await session.submit("wait_for", name="older"))
            latest = await session.task_of(await session.submit("echo", text="latest"))
            await session.read_until(_ends(latest))  # the latest task's result never waits
            gates.open("older")
            assert (await (await remote.watch(older)).wait(timeout_seconds=5)).status is TaskStatus.COMPLETED
            # The older task ended while the caller is submitting: its result waits for the next ack ...
            next_number = await session.submit("echo", text="next")
            message = await session.read_until(_ends(older))
            assert [ack.request_id for ack in message.acks] == [next_number]
            assert sum(_ends(older)(m) for m in session.messages) == 1


async def test_a_waiting_result_goes_alone_when_no_ack_comes_and_a_watching_session_never_waits(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates, monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_worker()
    monkeypatch.setattr("worker_abstraction.orchestrator.daemon.session.SUBMITTING_SECONDS", 60.0)
    async with OrchestratorServer(registry.address, port=0) as server:
        async with aio.insecure_channel(server.address) as channel:
            session, watcher = _RawSession(channel), _RawSession(channel)
            await session.call.read()
            await watcher.call.read()
            older = await session.task_of(await session.submit("wait_for", name="alone"))
            latest = await session.task_of(await session.submit("echo", text="latest"))
            await session.read_until(_ends(latest))
            await watcher.call.write(pb.SessionRequest(watches=[pb.WatchTaskRequest(task_id=older)]))
            gates.open("alone")
            alone = await session.read_until(_ends(older))  # after UPDATE_HOLD_SECONDS, with no ack
            assert not alone.acks
            await watcher.read_until(_ends(older))
        monkeypatch.setattr("worker_abstraction.orchestrator.daemon.session.UPDATE_HOLD_SECONDS", 60.0)
        async with aio.insecure_channel(server.address) as channel:
            submitter, watcher = _RawSession(channel), _RawSession(channel)
            await submitter.call.read()
            await watcher.call.read()
            watched = await submitter.task_of(await submitter.submit("wait_for", name="watched"))
            await submitter.task_of(await submitter.submit("echo", text="latest"))
            await watcher.call.write(pb.SessionRequest(watches=[pb.WatchTaskRequest(task_id=watched)]))
            await watcher.read_until(lambda m: any(u.task_id == watched for u in m.updates))  # it follows it
            gates.open("watched")
            await watcher.read_until(_ends(watched))  # a session that submits nothing holds nothing back
