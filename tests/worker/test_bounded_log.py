"""A task that streams on keeps a bounded log on its worker: live readers get every chunk, a resume from before
what is kept is refused with where to resume (not handed a log with a hole)."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from tests.hitl.workers import AskingWorker
from worker_abstraction import AsyncOrchestrator, RegistryServer
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.worker import tasks

pytestmark = pytest.mark.timeout(30)


async def test_a_long_stream_reaches_its_reader_whole_while_its_worker_keeps_only_the_latest(
    registry: RegistryServer, start_worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "KEEP_BYTES", 20_000)  # ~270 of the 2,000 chunks below
    worker = await start_worker(AskingWorker)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("tokens", timeout_seconds=5)
        handle = await orchestrator.execute_task("tokens", {"count": 2000})
        seen = [chunk async for chunk in handle.stream()]
        assert [chunk.index for chunk in seen] == list(range(1, 2001))
        assert [chunk.text for chunk in seen] == [f"{index:08d}" for index in range(2000)]
        assert await handle.result() == 2000
        async with aio.insecure_channel(worker.address) as channel:
            stub = pb_grpc.WorkerServiceStub(channel)
            request = pb.GetTaskStatusRequest(task_id=handle.task_id, from_start=True)
            with pytest.raises(aio.AioRpcError) as refused:
                _ = [response async for response in stub.StreamTaskStatus(request)]
            assert refused.value.code() is grpc.StatusCode.OUT_OF_RANGE
            assert "are no longer kept" in (refused.value.details() or "")
            # What is kept is there, in order, to the end.
            latest = pb.GetTaskStatusRequest(task_id=handle.task_id, after_sequence=2000)
            tail = [response.result async for response in stub.StreamTaskStatus(latest)]
            assert [update.sequence for update in tail] == [2001, 2002, 2003]
            assert tail[-1].status == pb.TASK_STATUS_COMPLETED
