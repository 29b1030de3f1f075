"""A daemon dies just after a worker refused a task (it was full) and the same attempt went to another worker;
a successor resumes the task from the store. On either home (SQLite; NATS, partitioned), the successor must find the
attempt where it runs, or know it was never sent: it never asks the worker that refused it, the task runs on
one worker only, and its record names only workers that were sent each attempt.

The crash is a store whose writes from some point on are held back and then lost, as they are when a
daemon is SIGKILLed before writes made behind are stored (on NATS, the first daemon's connection is closed
too, and the successor takes its partitions over once its lease has lapsed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from nats.aio.client import Client

from tests.conftest import eventually
from tests.nats_server import NatsServer
from tests.orchestrator.fake_edge import Attempt, FakeEdge, FakeRegistry, fake_worker
from worker_abstraction import AsyncOrchestrator, RetryPolicy, TaskStatus
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.orchestrator.edge.dispatch import Answer
from worker_abstraction.orchestrator.edge.link import WorkerLinks
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStore, PartitionedStoreOptions
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.stores.jetstream import NatsOptions, connect
from worker_abstraction.stores.jetstream.partitions import PartitionOptions
from worker_abstraction.stores.jetstream.pipeline import Ack
from worker_abstraction.stores.jetstream.tasks import DISPATCHED, TaskDoc
from worker_abstraction.stores.sqlite import SqliteTaskStore
from worker_abstraction.stores.tasks import TaskStore

pytestmark = pytest.mark.timeout(60)

WORKERS = (fake_worker("w1"), fake_worker("w2"))
PARTITIONS = 4  # (the NATS home's: the first daemon, alone, holds them all)
LEASE_SECONDS = 2.0  # the successor takes the partitions over this long (and a little) after the crash
Names = Callable[[str], bool]  # does a write name this worker as the one the attempt was sent to?


class Losing:
    """Writes pass until `hold_from` matches one; that one and all after it are held back, and `crash()` loses
    them. `reached` is set when the first one is held; `stored(wanted)` returns once a write it matches is."""

    def __init__(self) -> None:
        self.hold_from: Callable[[Any], bool] = lambda _: False
        self.reached = asyncio.Event()
        self._held: list[asyncio.Future[None]] = []
        self._stored: list[Any] = []
        self._more_stored = asyncio.Event()

    def holds(self, write: Any) -> bool:
        if not self.reached.is_set() and self.hold_from(write):
            self.reached.set()
        return self.reached.is_set()

    def held(self) -> asyncio.Future[None]:
        held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._held.append(held)
        return held

    def passed(self, item: Any, write: Awaitable[Any]) -> asyncio.Future[Any]:
        passing = asyncio.ensure_future(write)

        def stored(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                self._stored.append(item)
                self._more_stored.set()

        passing.add_done_callback(stored)
        return passing

    async def stored(self, wanted: Callable[[Any], bool]) -> None:
        while not any(wanted(item) for item in self._stored):
            self._more_stored.clear()
            await self._more_stored.wait()

    def crash(self) -> None:
        for held in self._held:
            held.cancel()


class LosingStore(Losing):
    """A SQLite task store whose writes can be lost (see `Losing`); a held write is (name, arguments)."""

    def __init__(self, inner: SqliteTaskStore) -> None:
        super().__init__()
        self.inner = inner

    def _write(self, name: str, *args: Any, **kwargs: Any) -> Awaitable[None]:
        if self.holds((name, args)):
            return self.held()
        return self.passed((name, args), getattr(self.inner, name)(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        if name in ("accepted", "reserve", "dispatched", "requeued", "cancel_requested", "finished",
                    "dead_lettered", "dead_letters_removed"):  # fmt: skip
            return lambda *args, **kwargs: self._write(name, *args, **kwargs)
        return getattr(self.inner, name)  # reads


class LosingPartitions(PartitionedStore):
    """The partitioned home's store, whose document writes can be lost (see `Losing`); a held write is the
    document it would write. Set `losing` after opening; once `dead`, writes go to the (closed) connection."""

    losing: Losing
    dead = False

    def write_doc(self, task_id: str, doc: TaskDoc, last_revision: int) -> asyncio.Future[Ack]:
        if not self.dead and self.losing.holds(doc):
            return cast("asyncio.Future[Ack]", self.losing.held())
        return self.losing.passed(doc, super().write_doc(task_id, doc, last_revision))

    def finish_doc(self, doc: TaskDoc) -> asyncio.Future[Ack]:
        if not self.dead and self.losing.holds(doc):
            return cast("asyncio.Future[Ack]", self.losing.held())
        return self.losing.passed(doc, super().finish_doc(doc))


class Backend:
    """Where the task lives: `first()` is the daemon that crashes, `successor()` the one that resumes."""

    losing: Losing
    names: Callable[[str], Callable[[Any], bool]]  # the held write that sends the attempt to this worker

    async def first(self, edge: FakeEdge) -> AsyncOrchestrator:
        raise NotImplementedError

    async def crash(self) -> None:
        raise NotImplementedError

    async def successor(self, edge: FakeEdge) -> AsyncOrchestrator:
        raise NotImplementedError


def _orchestrator(edge: FakeEdge, **options: Any) -> AsyncOrchestrator:
    return AsyncOrchestrator(
        "fake-registry:1",
        links=cast(WorkerLinks, edge),
        directory=WorkerDirectory(cast(RegistryClient, FakeRegistry(*WORKERS))),
        retry_policy=RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01),
        **options,
    )


class OnSqlite(Backend):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.names = lambda worker_id: lambda write: write[0] == "dispatched" and write[1][1] == worker_id
        self._first: AsyncOrchestrator | None = None
        self._stores: list[SqliteTaskStore] = []

    async def first(self, edge: FakeEdge) -> AsyncOrchestrator:
        store = LosingStore(await self._open())
        self.losing = store
        self._first = _orchestrator(edge, task_store=cast(TaskStore, store))
        return self._first

    async def crash(self) -> None:
        assert self._first is not None
        self.losing.crash()
        await self._first.aclose()
        await self._stores.pop().close()  # (what was let through is committed as it closes)

    async def successor(self, edge: FakeEdge) -> AsyncOrchestrator:
        return _orchestrator(edge, task_store=await self._open())

    async def _open(self) -> SqliteTaskStore:
        store = await SqliteTaskStore(self.path).open()
        self._stores.append(store)
        return store

    async def aclose(self) -> None:
        for store in self._stores:
            await store.close()


class OnNats(Backend):
    """On the partitioned home: the first daemon holds every partition; it dies (its connection closed, what
    it held back lost) and the successor takes the partitions over once the first one's lease has lapsed."""

    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.names = lambda worker_id: lambda doc: doc.state == DISPATCHED and doc.worker_id == worker_id
        self._orchestrators: list[AsyncOrchestrator] = []
        self._client: Client | None = None
        self._store: LosingPartitions | None = None

    async def first(self, edge: FakeEdge) -> AsyncOrchestrator:
        self._client = await connect(NatsOptions((self.server.url,)))
        self._store = await LosingPartitions.open(self._client, PartitionedStoreOptions(partitions=PARTITIONS))
        self._store.losing = self.losing = Losing()
        leases = PartitionOptions(partitions=PARTITIONS, lease_seconds=LEASE_SECONDS)
        home = PartitionedHome(self._client, self._store, replica="first", partitions=leases)
        return self._opened(_orchestrator(edge, home=home))

    async def crash(self) -> None:
        assert self._client is not None and self._store is not None
        await self._client.close()  # nothing more of the first daemon reaches NATS; its lease is not kept
        self._store.dead = True
        self.losing.crash()  # what it held back is lost
        # (the first daemon is closed at the end: cut off from NATS, it can no longer change anything)

    async def successor(self, edge: FakeEdge) -> AsyncOrchestrator:
        home = await PartitionedHome.open(
            NatsOptions((self.server.url,)), replica="successor", partitions=PARTITIONS, lease_seconds=LEASE_SECONDS
        )
        return self._opened(_orchestrator(edge, home=home))

    def _opened(self, orchestrator: AsyncOrchestrator) -> AsyncOrchestrator:
        self._orchestrators.append(orchestrator)
        return orchestrator

    async def aclose(self) -> None:
        for orchestrator in self._orchestrators:
            await orchestrator.aclose()


@pytest.fixture(params=["sqlite", "nats"])
async def home(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made: OnSqlite | OnNats
    if request.param == "sqlite":
        made = OnSqlite(tmp_path / "tasks.db")
    else:
        made = OnNats(request.getfixturevalue("nats_server"))
    yield made
    await made.aclose()


async def _play(edge: FakeEdge, ran: list[Attempt]) -> None:
    """The workers as the successor meets them: an attempt that ran is followed to its end; one a worker
    never ran is unknown there; a new one is accepted and completes."""

    async def follows() -> None:
        while True:
            followed = await edge.next_followed()
            if any((a.worker_id, a.number) == (followed.worker_id, followed.number) for a in ran):
                followed.say(TaskStatus.COMPLETED, output_json='"done"')
            else:
                followed.lose("the worker no longer knows the task")

    async def dispatches() -> None:
        while True:
            sent = await edge.next_sent()
            sent.accept()
            ran.append(sent)
            sent.say(TaskStatus.COMPLETED, output_json='"done"')

    await asyncio.gather(follows(), dispatches())


@pytest.mark.parametrize("crash", ["before the other worker's fact is stored", "after it is stored"])
async def test_a_successor_finds_a_refused_attempt_where_it_was_sent_again_or_nowhere(
    home: Backend, crash: str
) -> None:
    first_edge = FakeEdge(*WORKERS)
    first = await home.first(first_edge)
    await first.wait_for_workers("job", count=2, timeout_seconds=5)
    handle = await first.execute_task("job", {})
    async with asyncio.timeout(10):
        refused = await first_edge.next_sent()
        other = next(w.worker_id for w in WORKERS if w.worker_id != refused.worker_id)
        await home.losing.stored(home.names(refused.worker_id))  # "sent to the worker that refuses" is stored
        if crash.startswith("before"):
            home.losing.hold_from = home.names(other)
            refused.refuse(Answer.BUSY)
            await home.losing.reached.wait()  # the attempt is on its way to the other worker
        else:
            refused.refuse(Answer.BUSY)
            (await first_edge.next_sent()).accept()
            await home.losing.stored(home.names(other))
            home.losing.hold_from = lambda _: True
        ran = [attempt for attempt in first_edge.sent if attempt.accepted]
        for attempt in first_edge.sent[1:]:
            if not attempt.accepted:  # whatever reached a worker runs there
                attempt.accept()
                ran.append(attempt)
        await home.crash()

        second_edge = FakeEdge(*WORKERS)
        successor = await home.successor(second_edge)
        playing = asyncio.ensure_future(_play(second_edge, ran))
        try:
            await successor.start()
            watched = await successor.watch(handle.task_id)
            assert await watched.result(timeout_seconds=10) == "done"
            await eventually(lambda: _completed(successor, handle.task_id), what="its record says it completed")
            record = await successor.task(handle.task_id)
        finally:
            playing.cancel()
            await asyncio.gather(playing, return_exceptions=True)
            await successor.aclose()

    assert len(ran) == 1, f"the task ran on {[(a.worker_id, a.number) for a in ran]}"
    # The successor asked no worker about an attempt that worker never ran.
    assert all((f.worker_id, f.number) == (ran[0].worker_id, ran[0].number) for f in second_edge.followed)
    sent = {(a.number, a.worker_id) for a in first_edge.sent + second_edge.sent}
    named = {(a.number, a.worker_id) for a in record.attempts}
    assert named <= sent, f"the record names workers never sent those attempts: {named - sent}"
    assert (ran[0].number, ran[0].worker_id) in named


async def _completed(orchestrator: AsyncOrchestrator, task_id: str) -> bool:
    # (a shared document is finished just after the last update is published: no event says when)
    return (await orchestrator.task(task_id)).status is TaskStatus.COMPLETED
