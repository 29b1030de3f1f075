"""A task submitted under an id whose task is stored already, which nobody runs yet (PartitionedHome, on a real
nats-server): a workflow's next holder submits a step again under its fixed id. The acceptance fails (the id
is taken) and its caller follows the task; the daemon holding the task's partition carries it on and it ends,
both when that daemon's read of the partition passed the task over while it was being accepted, and when the
daemon that stored the task was killed before it told the partition's holder (its poke lost)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from nats.aio.msg import Msg

from tests.conftest import Gates, eventually
from tests.nats_server import NatsServer
from tests.orchestrator.replicas import replicas
from worker_abstraction import AsyncOrchestrator, AsyncTaskHandle, RegistryServer, TaskExistsError, TaskStatus
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStore, PartitionedStoreOptions
from worker_abstraction.stores.jetstream import NatsOptions, connect
from worker_abstraction.stores.jetstream.partitions import PartitionOptions, partition_of
from worker_abstraction.stores.jetstream.tasks import TaskDoc

pytestmark = pytest.mark.timeout(90)

LEASE_SECONDS = 2.0
STEP = "wf-1.seed"  # (as a workflow names its steps' tasks)
# Well within a partition's next read (every 30 s), which would carry the task on by chance.
END_SECONDS = 15.0

Daemon = Callable[..., Awaitable[tuple[AsyncOrchestrator, PartitionedHome]]]


@asynccontextmanager
async def daemons(registry: RegistryServer, nats_server: NatsServer, partitions: int) -> AsyncIterator[Daemon]:
    """Start orchestrators on PartitionedHomes over a store of a given class (each on its own connection, as
    separate daemons are): `await daemon(name, store_class)`. Every one started is closed at the end."""
    async with AsyncExitStack() as stack:

        async def start(name: str, store: type[PartitionedStore]) -> tuple[AsyncOrchestrator, PartitionedHome]:
            connection = await connect(NatsOptions((nats_server.url,)))
            stack.push_async_callback(connection.close)
            opened = await store.open(connection, PartitionedStoreOptions(partitions=partitions))
            leased = PartitionOptions(partitions=partitions, lease_seconds=LEASE_SECONDS)
            home = PartitionedHome(connection, opened, replica=name, partitions=leased)
            orchestrator = await stack.enter_async_context(AsyncOrchestrator(registry.address, home=home))
            return orchestrator, home

        yield start


async def _ends(orchestrator: AsyncOrchestrator, task_id: str, gates: Gates, gate: str) -> None:
    """The task, followed through `orchestrator`, ends COMPLETED once `gate` opens, on its first attempt."""
    watched: AsyncTaskHandle = await orchestrator.watch(task_id)
    gates.open(gate)
    assert await asyncio.wait_for(watched.result(), END_SECONDS) == gate
    record = await orchestrator.task(task_id)
    assert record.status is TaskStatus.COMPLETED


class ReadWhileAccepting(PartitionedStore):
    """A store that reads a partition while a caller-chosen id is being accepted: each read of a partition
    waits until such a document is being created, and that creation waits until the read is done."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.creating = asyncio.Event()
        self.read = asyncio.Event()

    async def create_doc(self, doc: TaskDoc, *, chosen: bool = False) -> int:
        if chosen:
            self.creating.set()
            await self.read.wait()
        return await super().create_doc(doc, chosen=chosen)

    async def scan_partition(self, partition: int, seen: Callable[[Msg], None]) -> None:
        await self.creating.wait()
        await super().scan_partition(partition, seen)
        self.read.set()


async def test_a_task_read_while_its_id_is_being_accepted_here_is_carried_on_and_ends(
    registry: RegistryServer, nats_server: NatsServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker()
    gate = "accepting-while-read"
    shared = replicas(registry.address, nats_server.url, partitions=1, lease_seconds=LEASE_SECONDS)
    async with shared as replica, daemons(registry, nats_server, partitions=1) as daemon:
        first, home_first = await replica("first")
        await first.wait_for_workers("wait_for", timeout_seconds=5)
        handle = await first.execute_task("wait_for", {"name": gate}, task_id=STEP)
        await eventually(lambda: handle.status is TaskStatus.RUNNING, what="it runs on the first")
        await home_first.client.close()  # dies: nothing handed over

        second, home = await daemon("second", ReadWhileAccepting)
        assert isinstance(home.store, ReadWhileAccepting)
        await second.wait_for_workers("wait_for", timeout_seconds=5)
        await eventually(
            lambda: home.leases is not None and home.leases.held(0),
            timeout_seconds=15,
            what="the second holds the partition (its read waits for the acceptance)",
        )
        with pytest.raises(TaskExistsError):  # (a workflow follows its step then)
            await second.execute_task("wait_for", {"name": gate}, task_id=STEP)
        assert home.store.read.is_set()  # (the partition was read while the step was being accepted)
        await _ends(second, STEP, gates, gate)
        record = await second.task(STEP)
        assert [attempt.number for attempt in record.attempts] == [1]  # carried on, not run again


class PokesLost(PartitionedStore):
    """A store whose pokes never reach anyone: as a daemon killed right after it stored a task whose partition
    another daemon holds, before it told that daemon."""

    def poke(self, partition: int, task_id: str) -> None:
        return None


async def test_a_task_stored_by_a_daemon_killed_before_it_poked_the_holder_is_carried_on_when_submitted_again(
    registry: RegistryServer, nats_server: NatsServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker()
    gate = "accepting-poke-lost"
    partitions = 8
    async with daemons(registry, nats_server, partitions=partitions) as daemon:
        holder, home_holder = await daemon("a", PartitionedStore)
        storer, home_storer = await daemon("b", PokesLost)  # (a and b: each gets some of the 8 partitions)

        def shared_out() -> bool:
            held = [home.leases.owned() if home.leases is not None else {} for home in (home_holder, home_storer)]
            return all(held) and len(held[0]) + len(held[1]) == partitions

        await eventually(shared_out, timeout_seconds=20, what="the partitions are shared out")
        assert home_holder.leases is not None
        held = home_holder.leases.owned()
        task_id = next(f"wf-{n}.seed" for n in range(1000) if partition_of(f"wf-{n}.seed", partitions) in held)
        await storer.wait_for_workers("wait_for", timeout_seconds=5)
        await storer.execute_task("wait_for", {"name": gate}, task_id=task_id)  # stored; its holder never told
        await holder.wait_for_workers("wait_for", timeout_seconds=5)
        with pytest.raises(TaskExistsError):  # (a workflow's next holder submitting its step again)
            await holder.execute_task("wait_for", {"name": gate}, task_id=task_id)
        await _ends(holder, task_id, gates, gate)
