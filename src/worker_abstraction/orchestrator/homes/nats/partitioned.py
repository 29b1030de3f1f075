"""PartitionedHome: tasks shared by orchestrator daemons on NATS, run by whichever daemon holds their partition.

Task ids hash to partitions (`partition_of`), and each live daemon holds a share of them on one lease
(`PartitionLeases`): no lease per task, and daemons never write the same keys, except a cancel from one
daemon into a task another runs. Where a lease per task would cost about ten NATS round trips a task, one
at a time, this home writes everything through one `JetStreamWriter`, so the writes of every task made in a
turn of the loop share one flush:

- **Accepting** (`partitioned_intake.Intake`): a task gets an id in a partition this daemon holds, so the
  daemon that accepts a task runs it; its document is created before its caller hears "accepted".
- **Running** (`partitioned_takeover.Takeover`): each held partition's unfinished documents are read when it
  is gained, after a reconnection and every 30 s, and pokes say which one another daemon wrote into; a
  document this daemon does not run is claimed and run, from its start or resumed from where it got. Facts
  are written behind (`PartitionedJournal`).
- **Losing a partition.** Its lease lapsed: every run of the partition stops at once and writes nothing
  more (the daemon that takes it over resumes them). Given up to rebalance (`on_releasing`) or at `aclose`:
  its runs stop, what they wrote goes out, then the partition is released. A caller's handle on a run that
  stopped goes on with the task's updates from the update log.
- **Following** a task run elsewhere: its updates from the update log, and its document when the log is
  silent for a while or the connection came back (`partitioned_follow`): a runner that died after storing
  the end but before publishing it leaves the end in the document.
- **Cancelling.** From any daemon: the cancel is written into the document (compare-and-set), its holder is
  poked, reads it there and cancels its run (a holder that missed the poke sees it when it next writes the
  document, or at its next read of the partition).
- **Work that keeps killing its holder**: a task taken over `MAX_TAKES` times from daemons that did not give
  it back ends FAILED, saying so, and becomes a dead letter (`Takeover`).
- **Dead letters** are shared in a bucket of their own.
- **Retention** (`use_retention`): finished tasks, their keys and updates, and dead letters expire by per-message
  TTLs (`partitioned_expiry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from nats.aio.client import Client
from nats.aio.subscription import Subscription

from worker_abstraction.orchestrator.core.facts import Resumable
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Accepted, Admit, Hold, Runs
from worker_abstraction.orchestrator.core.retention import Retention
from worker_abstraction.orchestrator.core.state import TaskState
from worker_abstraction.orchestrator.homes.nats.partitioned_callers import CallerSide
from worker_abstraction.orchestrator.homes.nats.partitioned_facts import TaskFacts
from worker_abstraction.orchestrator.homes.nats.partitioned_follow import SILENCE_SECONDS, Followers
from worker_abstraction.orchestrator.homes.nats.partitioned_intake import Intake
from worker_abstraction.orchestrator.homes.nats.partitioned_journal import PartitionedJournal
from worker_abstraction.orchestrator.homes.nats.partitioned_store import (
    PartitionedStore,
    PartitionedStoreOptions,
)
from worker_abstraction.orchestrator.homes.nats.partitioned_takeover import Takeover
from worker_abstraction.stores.availability import Backoff, StoreAvailability, kept_running, raise_if_cancelled
from worker_abstraction.stores.jetstream.connection import (
    NatsOptions,
    NatsStoreError,
    NatsUnavailableError,
    close,
    connect,
)
from worker_abstraction.stores.jetstream.partitions import PartitionLeases, PartitionOptions
from worker_abstraction.stores.jetstream.schedules import NatsScheduleBook
from worker_abstraction.stores.jetstream.updates import UpdateLogOptions
from worker_abstraction.types import TaskSpec

logger = logging.getLogger(__name__)

OPEN_SECONDS = 30.0  # how long a daemon starting asks a cluster that answers but cannot open its buckets yet
CLOSE_SECONDS = 10.0  # how long a daemon stopping waits for NATS to take its last facts and its partitions
RELEASE_SECONDS = 5.0  # how long a partition given up waits for its runs' last facts
FIRST_SHARE_SECONDS = 5.0  # how long `start` waits for this daemon's first partitions
MAX_TAKES = 10  # takeovers of one task before it ends FAILED as a dead letter
_PROBE_SECONDS = 1.0
_PROBE_TIMEOUT_SECONDS = 2.0
_RETRY_FIRST_SECONDS = 0.1
_RETRY_CAP_SECONDS = 5.0


class PartitionedHome(CallerSide):
    """This daemon's part in the partitioned tasks (a `core.home.TaskHome`); open it with `open`.

    Args:
        client: the NATS connection everything goes over.
        store: the buckets, the update log and the writer.
        replica: this daemon's name, unique among the daemons.
        partitions: how the partitions are leased (its `partitions` must be the store's).
        sleep: how the lease keeper waits between rounds (a test holds it up to let the lease lapse).
        silence_seconds: how long a task followed from here may say nothing before its document is read.
        max_takes: takeovers of a task (from daemons that did not give it back) before it ends FAILED.
    """

    def __init__(
        self,
        client: Client,
        store: PartitionedStore,
        *,
        replica: str,
        partitions: PartitionOptions | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        silence_seconds: float = SILENCE_SECONDS,
        max_takes: int = MAX_TAKES,
    ) -> None:
        self.client = client
        self.max_takes = max_takes
        self.store = store
        self.replica = replica
        options = partitions or PartitionOptions(partitions=store.partitions)
        if options.partitions != store.partitions:
            raise NatsStoreError(f"{options.partitions} partitions leased, but the store has {store.partitions}")
        self.partition_options = options
        self.availability = StoreAvailability(f"NATS (the partitioned tasks of replica {replica})")
        self.journal = PartitionedJournal(
            store, alive=self._alive, availability=self.availability, lost=self._task_lost, cancelled=self._cancel_run
        )
        self.leases: PartitionLeases | None = None
        self._sleep = sleep
        self._runs: Runs | None = None
        self._watches: dict[int, asyncio.Task[None]] = {}
        self._giving_up: set[int] = set()  # partitions being released: their runs stop, none starts
        self._pokes: Subscription | None = None
        self.intake = Intake(self)
        self._takeover = Takeover(self)
        self._followed: dict[str, tuple[AsyncTaskHandle, asyncio.Task[None]]] = {}
        self._followers = Followers(store.log, self.journal.finished_record, silence_seconds=silence_seconds)
        self._background: set[asyncio.Task[Any]] = set()
        self._first_share = asyncio.Event()
        self._reconnects = 0
        self._closing = False
        self._owns_client = False
        self._schedules: NatsScheduleBook | None = None

    @classmethod
    async def open(
        cls,
        nats: NatsOptions,
        *,
        replica: str,
        partitions: int = 32,
        lease_seconds: float = 10.0,
        store: PartitionedStoreOptions | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        silence_seconds: float = SILENCE_SECONDS,
        max_takes: int = MAX_TAKES,
    ) -> PartitionedHome:
        """Connect to NATS and open (creating them if missing) the buckets and the update log's stream.

        Raises:
            NatsStoreError: NATS is unreachable or too old, or a bucket or stream cannot be made.
        """
        client = await connect(nats, name=f"wa-orchestrator {replica}")
        # By default every bucket and stream in `nats.replicas` copies, the update log's too (opening a stream
        # brings it to the copies asked for: an R3 log opened with the log's own default would be cut to R1).
        copies = nats.replicas
        default = PartitionedStoreOptions(replicas=copies, updates=UpdateLogOptions(replicas=copies))
        options = dataclasses.replace(store or default, partitions=partitions)
        backoff = Backoff(_RETRY_FIRST_SECONDS, _RETRY_CAP_SECONDS)
        deadline = asyncio.get_running_loop().time() + OPEN_SECONDS
        try:
            while True:
                try:
                    opened = await PartitionedStore.open(client, options)
                    break
                except NatsUnavailableError as error:
                    if asyncio.get_running_loop().time() >= deadline:
                        raise
                    logger.info("NATS cannot open the partitioned tasks yet (%s); asking again", error)
                    await asyncio.sleep(backoff.pause())
        except BaseException:
            await client.close()
            raise
        leased = PartitionOptions(partitions=partitions, lease_seconds=lease_seconds, replicas=nats.replicas)
        home = cls(
            client,
            opened,
            replica=replica,
            partitions=leased,
            sleep=sleep,
            silence_seconds=silence_seconds,
            max_takes=max_takes,
        )
        home._owns_client = True
        return home

    # ---- life -----------------------------------------------------------------------------------------------

    def use_retention(self, retention: Retention) -> None:
        """Let what tasks finishing from now on leave on NATS expire as `retention` says, by per-message TTLs (see
        `partitioned_expiry`): the engine tells it before `start`; no sweep is needed (nor `expire`)."""
        self.store.use_retention(retention)

    @property
    def writable(self) -> bool:
        return self.availability.available

    def daemons_up(self) -> int:
        """The daemons sharing this home now (members of the partition leases): each enforces its share of
        every rate and concurrency limit (see `core.gates`)."""
        leases = self.leases
        return max(1, len(leases.members)) if leases is not None else 1

    @property
    def held(self) -> int:
        """Tasks this daemon holds now (in partitions whose lease still holds)."""
        leases = self.leases
        if leases is None:
            return 0
        owned = leases.owned()
        return sum(count for partition, count in self.journal.counts().items() if partition in owned)

    async def start(self, runs: Runs) -> None:
        """Take a share of the partitions (and so run their tasks); returns once the first ones are held, or
        after `FIRST_SHARE_SECONDS` (they come later then)."""
        self._runs = runs
        self._reconnects = self.client.stats["reconnects"]
        self._pokes = await self.store.hear_pokes(self._takeover.poked)
        kwargs: dict[str, Any] = {"availability": self.availability}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        leases = await PartitionLeases.open(self.client, self.replica, self.partition_options, **kwargs)
        leases.on_gained.append(self._gained)
        leases.on_lost.append(self._lost)
        leases.on_releasing.append(self._releasing)
        self.leases = leases
        self._spawn(self._kept_running("probing NATS", self._probe))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(FIRST_SHARE_SECONDS, self.partition_options.lease_seconds)):
                await self._first_share.wait()

    async def aclose(self) -> None:
        """Give every partition back (its runs' last facts written first, within `CLOSE_SECONDS`)."""
        self._closing = True
        for task in [*self._background, *self._watches.values()]:
            task.cancel()
        await asyncio.gather(*self._background, *self._watches.values(), return_exceptions=True)
        self._watches.clear()
        if self._pokes is not None:
            with contextlib.suppress(Exception):
                await self._pokes.unsubscribe()
            self._pokes = None
        if self.leases is not None:
            try:
                async with asyncio.timeout(CLOSE_SECONDS):
                    await self.leases.close()
            except TimeoutError:
                logger.warning("replica %s: its partitions were not given back within %gs", self.replica, CLOSE_SECONDS)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await self.journal.drain()
        except TimeoutError:
            logger.warning("replica %s: NATS did not take every last fact within %gs", self.replica, CLOSE_SECONDS)
        await self.journal.aclose()
        await self.store.aclose()
        if self._owns_client:
            await close(self.client)

    # ---- accepting -------------------------------------------------------------------------------------------

    def accept(self, spec: TaskSpec, then: Accepted, admit: Admit) -> None:
        self.intake.accept(spec, then, admit)

    def flush(self) -> None:
        return None  # (the writer flushes on the loop's next turn)

    # ---- partitions ------------------------------------------------------------------------------------------

    def _alive(self, partition: int, epoch: int) -> bool:
        """Whether the partition is held under `epoch` (its runs' facts may be written)."""
        leases = self.leases
        return leases is not None and leases.epoch(partition) == epoch

    def _may_run(self, partition: int, epoch: int) -> bool:
        """Whether a run may start in the partition: held under `epoch`, and not being given up."""
        return partition not in self._giving_up and self._alive(partition, epoch)

    def _gained(self, partition: int, epoch: int) -> None:
        self._giving_up.discard(partition)
        self._first_share.set()
        self._watch(partition, epoch)

    def _watch(self, partition: int, epoch: int) -> None:
        previous = self._watches.pop(partition, None)
        if previous is not None:
            previous.cancel()
        if not self._closing:
            self._watches[partition] = asyncio.ensure_future(self._takeover.watching(partition, epoch))

    def _stop_watching(self, partition: int) -> None:
        watching = self._watches.pop(partition, None)
        if watching is not None:
            watching.cancel()
            self._keep(watching)

    def _lost(self, partition: int, reason: str) -> None:
        self._stop_watching(partition)
        for facts in self.journal.of_partition(partition):
            self.journal.lose(facts, f"partition {partition} {reason}")

    async def _releasing(self, partition: int) -> None:
        self._giving_up.add(partition)  # (no run starts in it any more: see `Intake`)
        self._stop_watching(partition)
        await self.journal.release(partition, RELEASE_SECONDS)

    def _run(self, spec: TaskSpec, facts: TaskFacts, resume: Resumable | None) -> AsyncTaskHandle:
        assert self._runs is not None, "the home was started"
        hold = Hold(
            spec,
            self.journal,
            resume=resume,
            sink=self.journal.sink(facts),
            alive=functools.partial(self._alive, facts.partition, facts.epoch),
            max_output_bytes=max(0, self.intake.output_room(spec)),
        )
        facts.hold = hold
        self.journal.held(facts)
        hold.when_lost(functools.partial(self.journal.hold_lost, facts))
        facts.handle = self._runs.run(hold)
        return facts.handle

    def _task_lost(self, facts: TaskFacts) -> None:
        """A run here stopped (its hold lost): whoever holds its handle hears the rest from the update log."""
        handle = facts.handle
        if handle is None or handle.done() or self._closing:
            return
        # The handle given to its caller is the run's own: it goes on being fed, from the log.
        state: TaskState = handle._state
        self._spawn(self._carry_on(state, facts.task_id, facts.published))

    async def _carry_on(self, state: TaskState, task_id: str, after: int) -> None:
        listening = self.store.log.listen(task_id)
        try:
            await self._followers.feed(state, after=after, listening=listening)
        finally:
            self.store.log.unlisten(listening)

    def _cancel_run(self, task_id: str, reason: str) -> None:
        """Another daemon wrote a cancel into the document of a task run here: the run carries it out."""
        handle = self._runs.handle(task_id) if self._runs is not None else None
        if handle is not None and not handle.done():
            self._spawn(_cancelled(handle, reason))

    def _decide_run(self, task_id: str, decision: str) -> None:
        """Another daemon wrote an operator's decision into the document of a task run here: the run takes it."""
        try:
            approved, decided_by, reason = json.loads(decision)
        except (ValueError, TypeError):
            logger.warning("task %s: a decision that cannot be read was ignored: %.80r", task_id, decision)
            return
        if self._runs is not None:
            self._runs.decided(task_id, bool(approved), str(decided_by), str(reason))

    # ---- staying up ------------------------------------------------------------------------------------------

    async def _probe(self) -> None:
        """Ask NATS whether the documents answer, every second; after a reconnection, hear every held
        partition again from its start (a watch may have missed what was written meanwhile), and have every
        follower read its task's document."""
        backoff = Backoff(_RETRY_FIRST_SECONDS, _PROBE_SECONDS)
        while True:
            raise_if_cancelled()
            await asyncio.sleep(_PROBE_SECONDS if self.availability.available else backoff.pause())
            reconnects = self.client.stats["reconnects"]
            if reconnects != self._reconnects and self.client.is_connected and self.leases is not None:
                self._reconnects = reconnects
                for partition, epoch in self.leases.owned().items():
                    self._watch(partition, epoch)
                self._followers.reconnected()  # (they may have missed a task's last update)
            try:
                await self.store.probe(timeout_seconds=_PROBE_TIMEOUT_SECONDS)
            except NatsStoreError as error:
                self.availability.failed(error)
                continue
            self.availability.answered()
            backoff.reset()

    async def _kept_running(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        await kept_running(name, loop, logger, first=_RETRY_FIRST_SECONDS, cap=_RETRY_CAP_SECONDS)

    # ---- inside ----------------------------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        self._keep(asyncio.ensure_future(work))

    def _keep(self, task: asyncio.Future[Any]) -> None:
        assert isinstance(task, asyncio.Task)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _cancelled(handle: AsyncTaskHandle, reason: str) -> None:
    try:
        await handle.cancel(reason)
    except Exception:
        logger.exception("cancelling task %s failed", handle.task_id)
