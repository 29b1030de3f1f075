"""The edge towards workers, in memory: the test plays every worker, and no socket is opened.

`FakeEdge` offers what the engine uses of `WorkerLinks` (inject it as `links=`); `FakeRegistry` stands in for
the registry a `WorkerDirectory` watches (inject `WorkerDirectory(FakeRegistry(...))` as `directory=`). Each
attempt handed to a worker waits in `FakeEdge.sent` until the test answers it (accepted, busy, unreachable
...); each attempt a resumed run follows waits in `FakeEdge.followed`; each cancel in `FakeEdge.cancels`.
The test then speaks for the worker (`say`, `lose`), with the manual clock moving deadlines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from worker_abstraction.orchestrator.edge.dispatch import Answer, AttemptSink, CancelAnswer, DispatchAnswer
from worker_abstraction.orchestrator.edge.follow import Reach
from worker_abstraction.registry.events import WorkerEvent, WorkerEventType
from worker_abstraction.types import CapabilitySpec, TaskSpec, TaskStatus, TaskUpdate, WorkerInfo


def fake_worker(worker_id: str, capability: str = "job", *, slots: int = 1) -> WorkerInfo:
    """A worker that exists only in a `FakeRegistry` (its address is never dialed)."""
    return WorkerInfo(
        worker_id=worker_id,
        name=worker_id,
        address=f"fake-{worker_id}:1",
        capabilities=(CapabilitySpec(capability),),
        max_concurrent_tasks=slots,
    )


class FakeRegistry:
    """What a `WorkerDirectory` reads of a registry: these workers, then nothing more."""

    def __init__(self, *workers: WorkerInfo) -> None:
        self.workers = list(workers)
        self.address = "fake-registry:1"

    async def watch(self) -> AsyncIterator[WorkerEvent]:
        for worker in self.workers:
            yield WorkerEvent(WorkerEventType.JOINED, worker)
        yield WorkerEvent(WorkerEventType.SYNCED)
        await asyncio.Event().wait()  # (a registry with nothing more to say)

    async def list_workers(self) -> list[WorkerInfo]:
        return list(self.workers)

    async def aclose(self) -> None:
        return None


@dataclass(eq=False)
class Attempt:
    """One attempt at a fake worker: sent there (`answer` is the worker's answer) or followed there."""

    task_id: str
    number: int
    worker_id: str
    address: str
    sink: AttemptSink
    answer: asyncio.Future[DispatchAnswer] | None = None  # None: followed, not sent
    _sequence: int = field(default=0, repr=False)

    def accept(self) -> None:
        assert self.answer is not None, "a followed attempt is not answered"
        self.answer.set_result(DispatchAnswer(Answer.ACCEPTED))

    def refuse(self, answer: Answer = Answer.BUSY, message: str = "full") -> None:
        assert self.answer is not None, "a followed attempt is not answered"
        self.answer.set_result(DispatchAnswer(answer, message))

    @property
    def accepted(self) -> bool:
        answer = self.answer
        return answer is not None and answer.done() and answer.result().answer is Answer.ACCEPTED

    def say(self, status: TaskStatus, *, output_json: str = "", error_message: str = "", **extra: Any) -> bool:
        """The worker's next update of this attempt (`extra`: more of its fields: a question, an answer, ...);
        False if nobody listens to it any more."""
        if not self.sink.active():
            return False
        self._sequence += 1
        update = TaskUpdate(
            task_id=self.task_id,
            status=status,
            sequence=self._sequence,
            output_json=output_json,
            error_message=error_message,
            worker_id=self.worker_id,
            attempt=self.number,
            **extra,
        )
        self.sink.deliver(update)
        return True

    def lose(self, reason: str = "the worker no longer knows the task") -> bool:
        """The attempt's outcome cannot be learnt (its worker forgot it, or is gone); False if nobody listens."""
        if not self.sink.active():
            return False
        self.sink.lost(reason)
        return True


@dataclass(eq=False)
class Cancel:
    task_id: str
    reason: str
    address: str
    answer: asyncio.Future[CancelAnswer]


T = TypeVar("T")


def _heard(kept: list[T], queued: asyncio.Queue[T], item: T) -> None:
    kept.append(item)
    queued.put_nowait(item)


class _FakeLink:
    def __init__(self, edge: FakeEdge, address: str) -> None:
        self._edge, self.address = edge, address

    def dispatch(
        self,
        spec: TaskSpec,
        *,
        attempt: int,
        worker_id: str,
        sink: AttemptSink,
        trace_context: tuple[tuple[str, str], ...] | None = None,
        answers: str | None = None,
        session_moved: bool = False,
    ) -> asyncio.Future[DispatchAnswer]:
        if answers:
            self._edge.answers[(spec.task_id, attempt)] = answers
        answer: asyncio.Future[DispatchAnswer] = asyncio.get_running_loop().create_future()
        sent = Attempt(spec.task_id, attempt, worker_id, self.address, sink, answer)
        _heard(self._edge.sent, self._edge._sent, sent)
        return answer

    def follow(self, sink: AttemptSink) -> None:
        worker_id = self._edge.worker_at.get(self.address, "")
        followed = Attempt(sink.task_id, sink.attempt, worker_id, self.address, sink)
        _heard(self._edge.followed, self._edge._followed, followed)

    def forget(self, sink: AttemptSink) -> None:
        self._edge.forgotten.append(sink)

    async def cancel(self, task_id: str, reason: str) -> CancelAnswer:
        call = Cancel(task_id, reason, self.address, asyncio.get_running_loop().create_future())
        _heard(self._edge.cancels, self._edge._cancels, call)
        return await call.answer

    async def provide_input(
        self, task_id: str, request_id: str, value_json: str, answered_by: str, attempt: int
    ) -> None:
        self._edge.inputs.append((task_id, request_id, value_json, answered_by, attempt))

    async def reach(self) -> tuple[Reach, str]:
        return self._edge.reach.get(self.address, (Reach.ANSWERED, ""))

    @property
    def idle(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


class FakeEdge:
    """`WorkerLinks`'s surface, in memory. Every dispatch, follow and cancel is kept (in order) and queued
    for the test to take with `next_sent()`, `next_followed()` and `next_cancel()`."""

    def __init__(self, *workers: WorkerInfo) -> None:
        self.worker_at = {worker.address: worker.worker_id for worker in workers}
        self.sent: list[Attempt] = []
        self.followed: list[Attempt] = []
        self.cancels: list[Cancel] = []
        self.forgotten: list[AttemptSink] = []
        self.answers: dict[tuple[str, int], str] = {}  # answers sent with an attempt (a slot-freeing wait's)
        self.inputs: list[tuple[str, str, str, str, int]] = []  # answers passed on to workers
        self.reach: dict[str, tuple[Reach, str]] = {}  # by address; default: every probe is answered
        self._sent: asyncio.Queue[Attempt] = asyncio.Queue()
        self._followed: asyncio.Queue[Attempt] = asyncio.Queue()
        self._cancels: asyncio.Queue[Cancel] = asyncio.Queue()
        self._links: dict[str, _FakeLink] = {}

    async def next_sent(self) -> Attempt:
        return await self._sent.get()

    async def next_followed(self) -> Attempt:
        return await self._followed.get()

    async def next_cancel(self) -> Cancel:
        return await self._cancels.get()

    # ---- what the engine calls (WorkerLinks) ----------------------------------------------------------------

    def get(self, address: str) -> _FakeLink:
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = _FakeLink(self, address)
        return link

    def known(self, address: str) -> _FakeLink | None:
        return self._links.get(address)

    async def discard_idle(self, address: str) -> None:
        self._links.pop(address, None)

    async def aclose(self) -> None:
        self._links.clear()
