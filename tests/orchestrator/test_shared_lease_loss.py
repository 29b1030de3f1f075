"""A replica whose lease on a task lapses mid-run (its keeper held up past the lease) stops that run at once:
it writes and publishes nothing more, dispatches nothing more, and the replica that took the task over
finishes it, once. Two replicas on one real nats-server; the workers are played in memory (`FakeEdge`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from tests.conftest import eventually
from tests.nats_server import NatsServer
from tests.orchestrator.fake_edge import Attempt, FakeEdge, FakeRegistry, fake_worker
from worker_abstraction import AsyncOrchestrator, TaskStatus
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.orchestrator.edge.link import WorkerLinks
from worker_abstraction.orchestrator.homes.nats.home import NatsHome
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.stores.jetstream import NatsOptions, TaskDocs, WorkQueueOptions, connect
from worker_abstraction.stores.jetstream.updates import UpdateLog
from worker_abstraction.stores.jetstream.work import WorkQueue

pytestmark = pytest.mark.timeout(60)

WORKER = fake_worker("w1", slots=1)
LEASE_SECONDS = 1.0


class Keeping:
    """How the paused replica's lease keeper waits between rounds: as usual, until `pause()`."""

    def __init__(self) -> None:
        self._going = asyncio.Event()
        self._going.set()

    async def __call__(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._going.wait()

    def pause(self) -> None:
        self._going.clear()

    def resume(self) -> None:
        self._going.set()


@dataclass
class Lapsed:
    """Replica `a` ran one task on the worker and held a second waiting for it; its leases lapsed (its keeper
    held up) and replica `b` took both over and follows the first where it runs."""

    a: NatsHome
    b: NatsHome
    edge_a: FakeEdge
    edge_b: FakeEdge
    keeping: Keeping
    running: Attempt  # the first task's attempt, as replica a sent it
    followed: Attempt  # the same attempt, as replica b follows it
    handles: list[AsyncTaskHandle]  # both tasks, as their caller (connected to a) follows them


def _orchestrator(edge: FakeEdge, shared: NatsHome) -> AsyncOrchestrator:
    directory = WorkerDirectory(cast(RegistryClient, FakeRegistry(WORKER)))
    return AsyncOrchestrator("fake-registry:1", links=cast(WorkerLinks, edge), directory=directory, home=shared)


@pytest.fixture
async def lapsed(nats_server: NatsServer) -> AsyncIterator[Lapsed]:
    keeping = Keeping()
    client = await connect(NatsOptions((nats_server.url,)))
    opened: list[AsyncOrchestrator] = []
    try:
        queue = await WorkQueue.open(client, WorkQueueOptions(lease_seconds=LEASE_SECONDS), sleep=keeping)
        docs, log = await TaskDocs.open(client), await UpdateLog.open(client)
        # One task at a time on its worker, one waiting: then it takes no more work (prefetch 1).
        a = NatsHome(client, docs, queue, log, replica="a", prefetch=1)
        edge_a = FakeEdge(WORKER)
        orchestrator_a = _orchestrator(edge_a, a)
        opened.append(orchestrator_a)
        await orchestrator_a.wait_for_workers("job", timeout_seconds=5)
        handles = [await orchestrator_a.execute_task("job", {}) for _ in range(2)]
        async with asyncio.timeout(10):
            running = await edge_a.next_sent()
        running.accept()
        running.say(TaskStatus.RUNNING)
        await eventually(lambda: a.held == 2, what="replica a holds both tasks")

        options = NatsOptions((nats_server.url,))
        b = await NatsHome.open(options, replica="b", work=WorkQueueOptions(lease_seconds=LEASE_SECONDS))
        edge_b = FakeEdge(WORKER)
        orchestrator_b = _orchestrator(edge_b, b)
        opened.append(orchestrator_b)
        await orchestrator_b.start()

        keeping.pause()
        async with asyncio.timeout(15):
            followed = await edge_b.next_followed()  # b took the running task over: a's lease lapsed
        assert (followed.task_id, followed.number, followed.worker_id) == (running.task_id, running.number, "w1")
        await eventually(lambda: b.held == 2, timeout_seconds=15, what="replica b took the waiting task too")
        yield Lapsed(a, b, edge_a, edge_b, keeping, running, followed, handles)
    finally:
        keeping.resume()
        for orchestrator in opened:
            await orchestrator.aclose()
        await client.close()


async def test_a_replica_whose_lease_lapsed_stops_its_run_at_the_next_word_of_its_worker(lapsed: Lapsed) -> None:
    # The worker answers on the stream replica a opened, before a's keeper has noticed anything.
    lapsed.running.say(TaskStatus.COMPLETED, output_json='"from a"')
    assert lapsed.a.held == 0  # both its runs stopped, at once
    assert lapsed.edge_a.sent == [lapsed.running]  # nothing more sent (the waiting task had the worker's slot)

    await _b_finishes_both(lapsed)


async def test_a_replica_whose_lease_lapsed_stops_its_run_once_its_keeper_notices_without_a_word(
    lapsed: Lapsed,
) -> None:
    lapsed.keeping.resume()
    await eventually(lambda: lapsed.a.held == 0, what="replica a stopped its runs")
    assert lapsed.running.sink in lapsed.edge_a.forgotten  # it no longer listens to its worker
    assert not lapsed.running.say(TaskStatus.COMPLETED, output_json='"from a"')
    assert lapsed.edge_a.sent == [lapsed.running]

    await _b_finishes_both(lapsed)


async def _b_finishes_both(lapsed: Lapsed) -> None:
    lapsed.followed.say(TaskStatus.COMPLETED, output_json='"from b"')
    async with asyncio.timeout(10):
        retried = await lapsed.edge_b.next_sent()  # the waiting task, under a number above a's
    assert retried.number > 3
    retried.accept()
    retried.say(TaskStatus.COMPLETED, output_json='"from b"')
    first = next(handle for handle in lapsed.handles if handle.task_id == lapsed.running.task_id)
    assert [await handle.result(timeout_seconds=10) for handle in lapsed.handles] == ["from b", "from b"]
    # What the caller heard of the first task: a's update from before the loss, then b's end; nothing of a's
    # after it (its COMPLETED "from a" never reached the log, and b's numbering follows on).
    assert [(u.sequence, u.status) for u in first.updates] == [(1, TaskStatus.RUNNING), (2, TaskStatus.COMPLETED)]
    assert lapsed.edge_b.sent == [retried] and lapsed.edge_a.sent == [lapsed.running]
    assert await _log_length(lapsed.b, first.task_id) == 2  # nobody published more
    await eventually(lambda: _finished_by(lapsed.b, first.task_id, "b"), what="b's outcome is the document's")


async def _log_length(shared: NatsHome, task_id: str) -> int:
    return await shared.log.last(task_id)


async def _finished_by(shared: NatsHome, task_id: str, replica: str) -> bool:
    found: Any = await shared.docs.get(task_id)
    return found is not None and found[0].finished and found[0].holder == replica
