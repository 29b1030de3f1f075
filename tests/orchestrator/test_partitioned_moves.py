"""Finished tasks move out of their partitions (PartitionedHome, on a real nats-server): a replica that takes the
partitions over reads only the unfinished tasks, however many finished before, and still finds the finished
ones by id and by idempotency key; a finished document left in its partition (its runner died before moving
it) is moved by the partition's next holder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from nats.aio.msg import Msg

from tests.conftest import Gates, eventually
from tests.nats_server import NatsServer
from tests.orchestrator.replicas import Replica, replicas
from worker_abstraction import RegistryServer, TaskExistsError, TaskOptions, TaskStatus
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStoreOptions

pytestmark = pytest.mark.timeout(90)

PARTITIONS = 8
LEASE_SECONDS = 2.0
FINISHED = 40
RUNNING = 4


@pytest.fixture
async def replica(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Replica]:
    """Start one more orchestrator on the shared NATS (its own connection, as a separate daemon has)."""
    async with replicas(
        registry.address,
        nats_server.url,
        partitions=PARTITIONS,
        lease_seconds=LEASE_SECONDS,
        store=PartitionedStoreOptions(moved_marker_seconds=1),
    ) as start:
        yield start


class Reads:
    """The task documents a home's partition reads hear (install it with `before_start`)."""

    def __init__(self) -> None:
        self.task_ids: list[str] = []

    def __call__(self, home: PartitionedHome) -> None:
        scan = home.store.scan_partition

        async def counted(partition: int, seen: Callable[[Msg], None]) -> None:
            def heard(message: Msg) -> None:
                task_id = home.store.task_id_of(message.subject)
                assert task_id is not None
                self.task_ids.append(task_id)
                seen(message)

            await scan(partition, heard)

        home.store.scan_partition = counted  # type: ignore[method-assign]


async def _in_partitions(home: PartitionedHome) -> int:
    """Messages under the partitions' subjects (documents and markers), finished copies aside."""
    prefix = f"$KV.{home.store.options.docs_bucket}."
    info = await home.client.jetstream().stream_info(
        f"KV_{home.store.options.docs_bucket}", subjects_filter=prefix + ">"
    )
    subjects = info.state.subjects or {}
    return sum(count for subject, count in subjects.items() if not subject.startswith(prefix + "done."))


async def _left_in_partitions(home: PartitionedHome, count: int) -> bool:
    return await _in_partitions(home) == count


async def test_a_replica_taking_partitions_over_reads_only_their_unfinished_tasks(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker(max_concurrent_tasks=16)
    first, home_first = await replica("first")
    await first.wait_for_workers("echo", timeout_seconds=5)
    keyed = [TaskOptions(idempotency_key=f"moved-{n}") for n in range(FINISHED)]
    finished = [await first.execute_task("echo", {"text": str(n)}, options=keyed[n]) for n in range(FINISHED)]
    assert [(await h.result(timeout_seconds=10))["text"] for h in finished] == [str(n) for n in range(FINISHED)]
    gate = "moves-running"
    running = [await first.execute_task("wait_for", {"name": gate}) for _ in range(RUNNING)]
    await eventually(lambda: all(h.status is TaskStatus.RUNNING for h in running), what="the others run")
    # Every finished document left its partition (and its marker expired): the running ones are all there is.
    await eventually(lambda: _left_in_partitions(home_first, RUNNING), timeout_seconds=15, what="finished ones moved")

    await home_first.client.close()  # it dies: the second takes every partition over once its lease lapsed
    reads = Reads()
    second, home_second = await replica("second", before_start=reads)
    await eventually(lambda: home_second.held == RUNNING, timeout_seconds=15, what="the second took them over")
    assert sorted(set(reads.task_ids)) == sorted(h.task_id for h in running)  # none of the finished ones

    gates.open(gate)
    for handle in running:
        watched = await second.watch(handle.task_id)
        assert await asyncio.wait_for(watched.result(), 15) == gate
        assert [a.number for a in (await second.task(handle.task_id)).attempts] == [1]
    # The finished ones are found by id, listed, and named by their keys, from the second replica.
    for n, handle in enumerate(finished):
        record = await second.task(handle.task_id)
        assert record.status is TaskStatus.COMPLETED and record.output == {"text": str(n)}
        assert (await (await second.watch(handle.task_id)).result()) == {"text": str(n)}
    again = await second.execute_task("echo", {"text": "again"}, options=keyed[0])
    assert again.task_id == finished[0].task_id and await again.result() == {"text": "0"}
    listed = {record.task_id: record.status for record in await second.tasks(limit=1000)}
    assert {h.task_id for h in finished + running} <= set(listed)
    assert {listed[h.task_id] for h in finished + running} == {TaskStatus.COMPLETED}
    await eventually(lambda: _left_in_partitions(home_second, 0), timeout_seconds=15, what="every one moved")


async def test_a_finished_task_left_in_its_partition_is_moved_by_its_next_holder_and_its_id_stays_taken(
    replica: Replica, start_worker: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_worker()
    first, home_first = await replica("first")
    await first.wait_for_workers("echo", timeout_seconds=5)
    kept: set[str] = set()

    def died_before_purging(task_id: str, revision: int) -> None:
        kept.add(task_id)

    monkeypatch.setattr(home_first.store, "purge_finished_soon", died_before_purging)
    handles = [await first.execute_task("echo", {"text": str(n)}, task_id=f"left-{n}") for n in range(RUNNING)]
    assert [(await h.result(timeout_seconds=10))["text"] for h in handles] == [str(n) for n in range(RUNNING)]
    await eventually(lambda: kept == {h.task_id for h in handles}, what="each finished document is stored")
    assert await _in_partitions(home_first) == RUNNING  # still in their partitions

    await home_first.client.close()
    reads = Reads()
    second, home_second = await replica("second", before_start=reads)
    await eventually(lambda: _left_in_partitions(home_second, 0), timeout_seconds=15, what="moved by the second")
    assert set(reads.task_ids) >= set(kept)
    for n, handle in enumerate(handles):
        assert (await second.task(handle.task_id)).output == {"text": str(n)}
        with pytest.raises(TaskExistsError):  # a finished task's id is never taken again
            await second.execute_task("echo", {"text": "again"}, task_id=handle.task_id)
    assert home_second.held == 0
