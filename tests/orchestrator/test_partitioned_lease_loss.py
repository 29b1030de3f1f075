"""A PartitionedHome replica whose lease lapses (its keeper held up) stops its runs at once: it writes and
publishes nothing more and dispatches nothing more; the replica that takes its partitions over follows the
running attempt where it runs and sends the waiting task under a number above any the first may have sent.
The caller, still connected to the first replica, hears the task end as the second ends it. A run whose
worker speaks once the lease has lapsed, before the keeper's timer has told anyone, stops at that word: its
caller never hears an outcome the task's record does not have. Two replicas on one real nats-server; the
worker is played in memory (`FakeEdge`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import cast

import pytest

from tests.conftest import eventually
from tests.nats_server import NatsServer
from tests.orchestrator.fake_edge import Attempt, FakeEdge, FakeRegistry, fake_worker
from worker_abstraction import AsyncOrchestrator, TaskStatus
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.orchestrator.edge.link import WorkerLinks
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.stores.jetstream import NatsOptions

pytestmark = pytest.mark.timeout(60)

WORKER = fake_worker("w1", slots=1)
PARTITIONS = 4
LEASE_SECONDS = 1.0


class Keeping:
    """How a replica's lease keeper waits between rounds: as usual, until `pause()`. Paused, it sets `parked`
    once it waits to be resumed (no renewal is on its way then, and none comes)."""

    def __init__(self) -> None:
        self._going = asyncio.Event()
        self._going.set()
        self.parked = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not self._going.is_set():
            self.parked.set()
        await self._going.wait()
        self.parked.clear()

    def pause(self) -> None:
        self._going.clear()

    def resume(self) -> None:
        self._going.set()


def _orchestrator(edge: FakeEdge, home: PartitionedHome) -> AsyncOrchestrator:
    directory = WorkerDirectory(cast(RegistryClient, FakeRegistry(WORKER)))
    return AsyncOrchestrator("fake-registry:1", links=cast(WorkerLinks, edge), directory=directory, home=home)


@pytest.fixture
async def opened() -> AsyncIterator[list[AsyncOrchestrator]]:
    orchestrators: list[AsyncOrchestrator] = []
    yield orchestrators
    for orchestrator in orchestrators:
        await orchestrator.aclose()


async def test_a_replica_whose_lease_lapsed_stops_and_the_other_finishes_its_tasks_once(
    nats_server: NatsServer, opened: list[AsyncOrchestrator]
) -> None:
    keeping = Keeping()
    options = NatsOptions((nats_server.url,))
    a, edge_a, running, handles = await _a_runs_two(options, keeping, opened)

    keeping.pause()  # a renews nothing more: its partitions lapse (none is given up: nobody else is there)
    # Its runs stop when the keeper's deadline fires (they count as not held from that moment on): then
    # the run no longer listens to its worker.
    await eventually(lambda: a.held == 0 and running.sink in edge_a.forgotten, what="a's lease lapsed, its run stopped")
    b = await PartitionedHome.open(options, replica="b", partitions=PARTITIONS, lease_seconds=LEASE_SECONDS)
    edge_b = FakeEdge(WORKER)
    orchestrator_b = _orchestrator(edge_b, b)
    opened.append(orchestrator_b)
    await orchestrator_b.start()  # b takes the partitions once a's member key has expired
    async with asyncio.timeout(15):
        followed = await edge_b.next_followed()  # b follows the running attempt where it runs
    assert (followed.task_id, followed.number, followed.worker_id) == (running.task_id, running.number, "w1")
    await eventually(lambda: b.held == 2, timeout_seconds=15, what="b took the waiting task too")

    assert a.held == 0
    assert not running.say(TaskStatus.COMPLETED, output_json='"from a"')
    assert edge_a.sent == [running]  # nothing more sent (the waiting task never left a)

    followed.say(TaskStatus.COMPLETED, output_json='"from b"')
    async with asyncio.timeout(10):
        retried = await edge_b.next_sent()  # the waiting task, under a number above any a may have sent
    assert retried.number > 3
    retried.accept()
    retried.say(TaskStatus.COMPLETED, output_json='"from b"')
    # The caller's handles are a's runs' own: they go on, from the update log, and end as b ended the tasks.
    assert [await handle.result(timeout_seconds=10) for handle in handles] == ["from b", "from b"]
    first = next(handle for handle in handles if handle.task_id == running.task_id)
    assert [(u.sequence, u.status) for u in first.updates] == [(1, TaskStatus.RUNNING), (2, TaskStatus.COMPLETED)]
    assert edge_b.sent == [retried] and edge_a.sent == [running]
    assert await b.store.log.last(first.task_id) == 2  # nobody published more
    for handle in handles:
        found = await b.store.get(handle.task_id)
        assert found is not None and found[0].finished and found[0].holder.startswith("b#")
        assert found[0].status == int(TaskStatus.COMPLETED)


async def test_a_replica_whose_lease_lapsed_stops_its_run_at_its_workers_next_word_before_its_keeper_notices(
    nats_server: NatsServer, opened: list[AsyncOrchestrator]
) -> None:
    keeping = Keeping()
    options = NatsOptions((nats_server.url,))
    a, edge_a, running, handles = await _a_runs_two(options, keeping, opened)
    leases = a.leases
    assert leases is not None
    first = next(handle for handle in handles if handle.task_id == running.task_id)

    keeping.pause()
    async with asyncio.timeout(10):
        await keeping.parked.wait()  # a renews nothing more, and no renewal is on its way
    # The event loop is held up past the lease's deadline (a long callback, say): the keeper's timer has not
    # told anyone yet when the worker's word comes.
    while time.monotonic() < leases.held_until:
        pass  # (nothing else runs meanwhile)
    assert running.say(TaskStatus.COMPLETED, output_json='"from a"')  # the run still listened: it heard it,
    assert running.sink in edge_a.forgotten  # and stopped at that word (it no longer listens)
    assert not first.done()  # its caller did not hear "from a": no record will say so
    await eventually(lambda: a.held == 0, what="a's keeper noticed too: its other run stopped")
    assert edge_a.sent == [running]  # nothing more sent (the waiting task never left a)

    await _b_takes_over_and_finishes_both(options, opened, running, handles)
    assert edge_a.sent == [running]


async def _a_runs_two(
    options: NatsOptions, keeping: Keeping, opened: list[AsyncOrchestrator]
) -> tuple[PartitionedHome, FakeEdge, Attempt, list[AsyncTaskHandle]]:
    """Replica a, alone (every partition its own, its keeper's pauses `keeping`'s), runs two tasks on the one
    slot of worker w1: one RUNNING there (its attempt returned), one waiting for the slot."""
    a = await PartitionedHome.open(
        options, replica="a", partitions=PARTITIONS, lease_seconds=LEASE_SECONDS, sleep=keeping
    )
    edge_a = FakeEdge(WORKER)
    orchestrator_a = _orchestrator(edge_a, a)
    opened.append(orchestrator_a)
    await orchestrator_a.wait_for_workers("job", timeout_seconds=5)
    assert a.leases is not None and len(a.leases.owned()) == PARTITIONS
    handles = [await orchestrator_a.execute_task("job", {}) for _ in range(2)]  # both in a's partitions
    async with asyncio.timeout(10):
        running = await edge_a.next_sent()
    running.accept()
    running.say(TaskStatus.RUNNING)
    assert a.held == 2  # one on the worker, one waiting for its only slot
    return a, edge_a, running, handles


async def _b_takes_over_and_finishes_both(
    options: NatsOptions, opened: list[AsyncOrchestrator], running: Attempt, handles: list[AsyncTaskHandle]
) -> None:
    """Replica b takes a's partitions over, follows `running` where it runs, sends the waiting task again, and
    ends both "from b"; a's callers hear them end so."""
    b = await PartitionedHome.open(options, replica="b", partitions=PARTITIONS, lease_seconds=LEASE_SECONDS)
    edge_b = FakeEdge(WORKER)
    orchestrator_b = _orchestrator(edge_b, b)
    opened.append(orchestrator_b)
    await orchestrator_b.start()  # b takes the partitions once a's member key has expired
    async with asyncio.timeout(15):
        followed = await edge_b.next_followed()  # b follows the running attempt where it runs
    assert (followed.task_id, followed.number, followed.worker_id) == (running.task_id, running.number, "w1")
    await eventually(lambda: b.held == 2, timeout_seconds=15, what="b took the waiting task too")
    followed.say(TaskStatus.COMPLETED, output_json='"from b"')
    async with asyncio.timeout(10):
        retried = await edge_b.next_sent()  # the waiting task, under a number above any a may have sent
    assert retried.number > 3
    retried.accept()
    retried.say(TaskStatus.COMPLETED, output_json='"from b"')
    # The caller's handles are a's runs' own: they go on, from the update log, and end as b ended the tasks.
    assert [await handle.result(timeout_seconds=10) for handle in handles] == ["from b", "from b"]
    first = next(handle for handle in handles if handle.task_id == running.task_id)
    # What the caller heard of the running task: a's update from before the loss, then b's end.
    assert [(u.sequence, u.status) for u in first.updates] == [(1, TaskStatus.RUNNING), (2, TaskStatus.COMPLETED)]
    assert edge_b.sent == [retried]
    assert await b.store.log.last(first.task_id) == 2  # nobody published more
    for handle in handles:
        record = await orchestrator_b.task(handle.task_id)
        assert (record.status, record.output) == (TaskStatus.COMPLETED, "from b")
