"""What a finished task leaves in an engine's memory: its handle and record for late watchers, never its hold.

An engine keeps its latest finished runs (`keep_finished`, 10,000 by default) so that a watcher arriving late
can replay a recent task. A run that kept its hold kept, through it, its home's facts and callbacks: on the
NATS home about twenty objects more per task, in cycles, which the cycle collector walked again and again (a
tenth of the daemon's CPU). Here the tasks end on a real nats-server with the worker played in memory, the
collector off: once their home has written them, no hold and no home's facts are left, and nothing the tasks
made is garbage only the collector could free.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import cast

import pytest

from tests.conftest import eventually
from tests.nats_server import NatsServer
from tests.orchestrator.fake_edge import FakeEdge, FakeRegistry, fake_worker
from worker_abstraction import AsyncOrchestrator, TaskStatus
from worker_abstraction.orchestrator.core.home import Hold
from worker_abstraction.orchestrator.core.run import TaskRun
from worker_abstraction.orchestrator.core.state import TaskState
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.orchestrator.edge.link import WorkerLinks
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.orchestrator.homes.nats.partitioned_facts import TaskFacts
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.stores.jetstream import NatsOptions

pytestmark = pytest.mark.timeout(60)

TASKS = 20
WORKER = fake_worker("w1", slots=TASKS)


@pytest.fixture
def collector_off() -> Iterator[None]:
    was_on = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_on:
            gc.enable()


def _alive(kind: type) -> int:
    return sum(1 for found in gc.get_objects() if isinstance(found, kind))


async def test_a_finished_task_keeps_no_hold_and_leaves_no_cycles(nats_server: NatsServer, collector_off: None) -> None:
    home = await PartitionedHome.open(NatsOptions((nats_server.url,)), replica="a", partitions=4)
    edge = FakeEdge(WORKER)
    directory = WorkerDirectory(cast(RegistryClient, FakeRegistry(WORKER)))
    async with AsyncOrchestrator(
        "fake-registry:1", links=cast(WorkerLinks, edge), directory=directory, home=home
    ) as orch:
        handles = [await orch.execute_task("job", {}) for _ in range(TASKS)]
        async with asyncio.timeout(10):
            for _ in range(TASKS):
                attempt = await edge.next_sent()
                attempt.accept()
                attempt.say(TaskStatus.COMPLETED, output_json='"done"')
        assert [await handle.result(timeout_seconds=10) for handle in handles] == ["done"] * TASKS
        await eventually(lambda: home.held == 0, what="every finished task written and let go by its home")

        assert _alive(TaskRun) >= TASKS  # kept for late watchers (keep_finished)...
        assert (_alive(Hold), _alive(TaskFacts)) == (0, 0)  # ...without their holds and the home's facts

        gc.set_debug(gc.DEBUG_SAVEALL)  # what only the collector would free is kept in gc.garbage, to be seen
        gc.collect()
        left = sorted(
            {type(found).__name__ for found in gc.garbage if isinstance(found, TaskRun | TaskState | Hold | TaskFacts)}
        )
        assert left == []
        assert [handle.status for handle in handles] == [TaskStatus.COMPLETED] * TASKS
