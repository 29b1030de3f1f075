"""The seam between the engine and where tasks live: `TaskHome`, and the `Hold` by which a run holds its task.

A home stores what is accepted (it alone owns task ids and idempotency keys), and hands the engine every
task this engine should run as a `Hold`: the task's spec, where to resume it (nothing: from the start), the
journal its run writes its facts to, where its updates go besides its handle, and whether the hold lasts.
The engine has one path for every home: accept into the home, and turn each hold into a `TaskRun`. A run
whose hold is lost (another engine may hold the task now) stops at once and writes nothing more.

A local home (memory or SQLite: `homes.local`) runs every task it accepts, here, and its holds are never
lost. The NATS home (`homes.nats`) shares tasks with other daemons: a task accepted here may run on
another daemon, and this one runs what the shared queue gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from worker_abstraction.types import DeadLetter, TaskQuery, TaskRecord, TaskSpec, TaskUpdate

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.facts import Journal, Resumable
    from worker_abstraction.orchestrator.core.handle import AsyncTaskHandle
    from worker_abstraction.stores.availability import StoreAvailability


@dataclass(frozen=True, slots=True)
class Acceptance:
    """What accepting a task came to: a handle on it, and whether it was a task submitted before (its
    idempotency key was known: the handle is the earlier task's)."""

    handle: AsyncTaskHandle
    duplicate: bool = False


# Told how an acceptance ended: (acceptance, None) once the task is stored, (None, error) if it cannot be.
Accepted = Callable[[Acceptance | None, BaseException | None], None]

Admit = Callable[[TaskSpec], None]  # raises if a new task may not be accepted (see `Engine`'s admission)

UpdateSink = Callable[[int, TaskUpdate], None]  # (position in the run's updates, the update)


class Hold:
    """A task its home gives this engine to run, held until it ends or the hold is lost.

    Args:
        spec: the task.
        journal: where its run writes its facts (fenced by the hold: nothing is written once it is lost).
        resume: where to carry it on from (None: from the start).
        sink: where its updates go besides its handle (the NATS home's update log), if anywhere.
        alive: whether the hold lasts, asked before the run acts. None (the default): it always does, and
            the home never calls `lose` (a local home's holds: then the run keeps nothing of the hold).
        max_output_bytes: the largest output (as JSON) the home can keep for this task (None: any the
            message limit lets through); a larger one fails the task (OutputTooLarge), never half-kept.
    """

    __slots__ = ("_alive", "_listeners", "journal", "lost_reason", "max_output_bytes", "resume", "sink", "spec")

    def __init__(
        self,
        spec: TaskSpec,
        journal: Journal,
        *,
        resume: Resumable | None = None,
        sink: UpdateSink | None = None,
        alive: Callable[[], bool] | None = None,
        max_output_bytes: int | None = None,
    ) -> None:
        self.spec = spec
        self.journal = journal
        self.max_output_bytes = max_output_bytes
        self.resume = resume
        self.sink = sink
        self._alive = alive
        self._listeners: list[Callable[[str], None]] | None = None  # (made by the first `when_lost`)
        self.lost_reason = ""  # why it was lost (empty while it lasts)

    @property
    def may_be_lost(self) -> bool:
        return self._alive is not None

    def alive(self) -> bool:
        """False once another engine may hold the task (then its run here stops: see `TaskRun.hand_over`)."""
        if self.lost_reason:
            return False
        if self._alive is None or self._alive():
            return True
        self.lose("its hold was lost")
        return False

    def lose(self, reason: str) -> None:
        """The hold ended (the home found its lease lapsed, or another engine took the task): tell the run."""
        if self.lost_reason:
            return
        self.lost_reason = reason or "its hold was lost"
        listeners, self._listeners = self._listeners or [], None
        for listener in listeners:
            listener(self.lost_reason)

    def ended(self) -> None:
        """The run is over here (its task ended, or it was handed over): what it registered is dropped, so
        that the run, its home's facts and this hold, which refer to one another, are freed by their reference
        counts rather than left to the cycle collector."""
        self._listeners = None
        self.sink = None

    def when_lost(self, listener: Callable[[str], None]) -> None:
        """Call `listener(reason)` once, when the hold is lost (at once if it is already)."""
        if self.lost_reason:
            listener(self.lost_reason)
        elif self._listeners is None:
            self._listeners = [listener]
        else:
            self._listeners.append(listener)


class Runs(Protocol):
    """What a home asks of the engine it feeds."""

    def run(self, hold: Hold) -> AsyncTaskHandle:
        """Run a held task here: from its start, or from `hold.resume`. Returns its run's handle."""
        ...

    def decided(self, task_id: str, approved: bool, decided_by: str, reason: str) -> None:
        """Another engine wrote an operator's decision on a task run here (one waiting for approval)."""
        ...

    def announce(self, handle: AsyncTaskHandle) -> None:
        """Tell the engine's observers of a task it did not accept but runs (one resumed from the store)."""
        ...

    def handle(self, task_id: str) -> AsyncTaskHandle | None:
        """The handle of a task running here or recently finished here (None: not known here)."""
        ...

    def capabilities(self) -> set[str]:
        """The capabilities the live workers offer now."""
        ...

    def waiting_for(self, capability: str) -> int:
        """Tasks of `capability` waiting here for a worker."""
        ...

    def on_capabilities(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever the workers (and so perhaps the capabilities) change."""
        ...


class TaskHome(Protocol):
    """Where tasks live; see the module docstring."""

    @property
    def availability(self) -> StoreAvailability | None:
        """Whether the home's store answers (None: it is in this process and always does)."""
        ...

    @property
    def writable(self) -> bool:
        """Whether the home can store what is accepted now (the daemon's health follows it)."""
        ...

    async def start(self, runs: Runs) -> None:
        """Begin handing `runs` the tasks it should run (a local home: the unfinished ones it holds first)."""
        ...

    def accept(self, spec: TaskSpec, then: Accepted, admit: Admit) -> None:
        """Store a task (its id and idempotency key claimed), then tell `then`; the only way in.

        A task whose key is known is not stored again: `then` gets the earlier task's handle, as a duplicate.
        A new task is first `admit`ted (which raises if it may not be accepted: nothing is stored then). A
        spec whose id the caller chose and that was taken before is `TaskExistsError`. Every error reaches
        `then(None, error)`.
        """
        ...

    def flush(self) -> None:
        """Store now what was accepted rather than on the loop's next turn, where that can be done at once."""
        ...

    async def follow(self, task_id: str) -> AsyncTaskHandle | None:
        """A handle on a task that is not running here (None: the home does not know it)."""
        ...

    async def record(self, task_id: str) -> TaskRecord | None:
        """Where a task not running here stands (None: the home does not know it)."""
        ...

    async def submission(self, task_id: str) -> TaskSpec | None:
        """A task as it was submitted (None: the home does not know it)."""
        ...

    async def page(self, query: TaskQuery, *, limit: int) -> list[TaskRecord]:
        """Up to `limit` of the tasks the home holds that match `query`'s filters, most recently accepted
        first (`query`'s own page is not read: the engine merges them with the runs it has)."""
        ...

    async def cancel(self, task_id: str, reason: str) -> bool | None:
        """Cancel a task that is not running here: True if asked, False if it finished, None if unknown."""
        ...

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        ...

    async def take_dead_letter(self, task_id: str) -> DeadLetter | None:
        """Remove a dead letter and return it (of two engines taking one, one gets it)."""
        ...

    def put_dead_letter(self, letter: DeadLetter) -> None:
        """Keep a dead letter again (one taken that could not be resubmitted)."""
        ...

    async def purge_dead_letters(self, task_ids: Iterable[str] | None) -> int:
        """Drop dead letters (all, or those named); how many were dropped."""
        ...

    async def aclose(self) -> None:
        """Stop handing out tasks; what is held goes back to the store (or to other engines) at once."""
        ...
