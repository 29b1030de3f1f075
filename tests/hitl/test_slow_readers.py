"""Readers of a streaming task that fall behind: each session pauses its followers past a small backlog and
catches them up from the task's own updates as its caller reads, so a reader that stopped for a while gets
every chunk, in order, numbered without a gap, and many slow readers cost the daemon no buffer per chunk."""

from __future__ import annotations

from typing import Any

import pytest
from grpc import aio

from tests.hitl.workers import AskingWorker
from worker_abstraction import (
    AsyncOrchestrator,
    OrchestratorServer,
    RegistryServer,
    RemoteOrchestrator,
    TaskNotFoundError,
)
from worker_abstraction._proto import worker_pb2 as pb

pytestmark = pytest.mark.timeout(60)

CHUNKS = 20_000


def _session(channel: aio.Channel) -> Any:
    return channel.stream_stream(
        "/worker_abstraction.OrchestratorService/OpenSession",
        request_serializer=pb.SessionRequest.SerializeToString,
        response_deserializer=pb.SessionResponse.FromString,
    )()


@pytest.mark.parametrize("pause_bytes", [4096, 256 * 1024])
async def test_readers_that_stop_reading_get_every_chunk_later(
    registry: RegistryServer, start_worker: Any, monkeypatch: pytest.MonkeyPatch, pause_bytes: int
) -> None:
    # A small pause point makes every reader pause and catch up thousands of times.
    monkeypatch.setattr("worker_abstraction.orchestrator.daemon.session.PAUSE_BYTES", pause_bytes)
    await start_worker(AskingWorker)
    async with (
        OrchestratorServer(registry.address, port=0) as daemon,
        RemoteOrchestrator(daemon.address) as remote,
        aio.insecure_channel(daemon.address) as channel,
    ):
        await remote.wait_for_workers("tokens", timeout_seconds=10)
        handle = await remote.execute_task("tokens", {"count": CHUNKS, "size": 100})
        readers = [_session(channel) for _ in range(8)]
        for reader in readers:
            await reader.read()  # ready
            await reader.write(pb.SessionRequest(watches=[pb.WatchTaskRequest(task_id=handle.task_id)]))
        # Nobody reads until the task has ended: every reader fell behind by the whole stream.
        assert await handle.result(timeout_seconds=30) == CHUNKS
        for reader in readers:
            sequences, indexes = [], []
            while True:
                message = await reader.read()
                for update in message.updates:
                    sequences.append(update.sequence)
                    if update.HasField("chunk"):
                        indexes.append(update.chunk.index)
                if any(u.status == pb.TASK_STATUS_COMPLETED for u in message.updates):
                    break
            assert indexes == list(range(1, CHUNKS + 1))
            assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
            reader.cancel()


async def test_finished_streaming_tasks_leave_a_bounded_memory_of_their_chunks(
    registry: RegistryServer, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine keeps its latest finished runs for late readers up to KEEP_FINISHED_BYTES, chunks counted.
    monkeypatch.setattr("worker_abstraction.orchestrator.core.records.KEEP_FINISHED_BYTES", 1_000_000)
    await start_worker(AskingWorker)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("tokens", timeout_seconds=10)
        ids = []
        for _ in range(4):  # each holds about 2,000 x (100 + 200) bytes: two of them fill the bound
            handle = await orchestrator.execute_task("tokens", {"count": 2000, "size": 100})
            assert await handle.result(timeout_seconds=20) == 2000
            ids.append(handle.task_id)
        latest = await orchestrator.watch(ids[-1])
        assert [c.index async for c in latest.stream()] == list(range(1, 2001))  # the latest: kept, chunks and all
        with pytest.raises(TaskNotFoundError):
            await orchestrator.watch(ids[0])  # the oldest gave way (no store keeps it here)
