"""What the partitioned journal knows of a task it holds (`TaskFacts`), and the document changes its facts
make: a new task's document, where a task taken over resumes from, "sent to worker X", "given back"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

from worker_abstraction import _convert
from worker_abstraction.orchestrator.core.facts import ATTEMPT_BLOCK, Resumable
from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
from worker_abstraction.orchestrator.core.home import Hold
from worker_abstraction.stores.availability import Backoff
from worker_abstraction.stores.jetstream.tasks import DISPATCHED, TaskDoc
from worker_abstraction.types import TaskSpec


def holder_token(replica: str, epoch: int) -> str:
    """How a document names the daemon holding it: the replica and its partition's epoch."""
    return f"{replica}#{epoch}"


def new_doc(spec: TaskSpec, holder: str) -> TaskDoc:
    """A new task's document (attempts up to ATTEMPT_BLOCK reserved)."""
    return TaskDoc(
        task_id=spec.task_id,
        request=_convert.spec_to_pb(spec).SerializeToString(),
        capability=spec.capability,
        accepted_at=spec.created_at_ns / 1e9,
        owner=spec.owner,
        idempotency_key=spec.options.idempotency_key,
        holder=holder,
        reserved=ATTEMPT_BLOCK,
    )


def resumable(spec: TaskSpec, doc: TaskDoc) -> Resumable:
    """Where a task taken over carries on from its document (attempt numbers above `doc.reserved`)."""
    sent = doc.state == DISPATCHED
    return Resumable(
        spec=spec,
        worker_id=doc.worker_id if sent else "",
        worker_address=doc.worker_address if sent else "",
        attempt=doc.attempt,
        reserved=doc.reserved,
        failures=doc.failures,
        cancel_reason=doc.cancel_reason,
        dispatched_at=doc.dispatched_at if sent else 0.0,
        answers=doc.answers,
    )


class TaskFacts:
    """A task this daemon holds: its document as made here, and how far NATS has it."""

    __slots__ = ("backoff", "base", "dirty", "doc", "epoch", "gone", "handle", "hold", "holder", "last", "partition",
                 "published", "releasing", "retrying", "revision", "sending", "settled", "task_id",
                 "waiting")  # fmt: skip

    def __init__(self, doc: TaskDoc, revision: int, partition: int, epoch: int, *, base: int = 0) -> None:
        self.task_id = doc.task_id
        self.doc = doc
        self.revision = revision  # the document's revision NATS last confirmed
        self.partition, self.epoch = partition, epoch
        self.holder = doc.holder
        self.hold: Hold | None = None
        self.handle: AsyncTaskHandle | None = None  # its run's
        self.base = base  # the run's updates are numbered after this one (the last a previous holder kept)
        self.published = base  # the highest update number sent to the log
        self.last: tuple[int, bytes] | None = None  # the terminal update, published once the end is stored
        self.sending = False  # a write is on its way
        self.dirty = False  # facts made since that write
        self.waiting: list[asyncio.Future[None]] = []  # awaited facts, stored with the next write
        self.retrying: object | None = None  # a retry pending (NATS did not answer) or a read-back under way
        self.backoff: Backoff | None = None
        self.releasing = False  # its partition is being given up: the run stopped, its writes go on
        self.gone = False  # no longer held here: nothing more is written
        self.settled: asyncio.Future[None] | None = None

    @property
    def quiet(self) -> bool:
        return not self.sending and not self.dirty and self.retrying is None


def sent_to(worker_id: str, worker_address: str, attempt: int) -> Callable[[TaskDoc], TaskDoc]:
    def sent(doc: TaskDoc) -> TaskDoc:
        return replace(
            doc,
            state=DISPATCHED,
            worker_id=worker_id,
            worker_address=worker_address,
            attempt=max(doc.attempt, attempt),
            dispatched_at=time.time(),
        )

    return sent


def given_back(doc: TaskDoc) -> TaskDoc:
    return replace(doc, released=True)


def succeed(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


def fail(waiters: list[asyncio.Future[None]], error: BaseException) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(error)
            waiter.exception()  # (its waiter hears it; a waiter gone meanwhile is not an error)
