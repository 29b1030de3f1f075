"""What a dispatch, a cancel or a probe can come to, as domain values; and where an attempt's updates go."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.types import TaskUpdate


class AttemptSink(Protocol):
    """Where the updates of one attempt go."""

    @property
    def task_id(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    def active(self) -> bool:
        """False once nobody wants this attempt's updates (it was superseded, or the task ended)."""
        ...

    def resume_after(self) -> int:
        """The last sequence number seen of this attempt (a broken stream resumes after it)."""
        ...

    def deliver(self, update: TaskUpdate) -> None: ...

    def lost(self, reason: str) -> None:
        """The attempt's outcome cannot be learnt: its worker is gone, or forgot it."""
        ...


class Answer(enum.Enum):
    ACCEPTED = "accepted"
    BUSY = "busy"  # no free slot, or shutting down: try later or elsewhere (it did not run)
    REJECTED = "rejected"  # the worker judged the task invalid: trying elsewhere will not help
    UNREACHABLE = "unreachable"  # no answer: it may or may not have arrived
    BROKEN = "broken"  # an answer no worker gives (another kind of server at the address, say)


@dataclass(frozen=True, slots=True)
class DispatchAnswer:
    answer: Answer
    message: str = ""


class CancelAnswer(enum.Enum):
    CANCELING = "canceling"  # the worker is stopping it; its CANCELED update follows
    FINISHED = "finished"  # it had already ended; its terminal update follows (or came)
    UNKNOWN = "unknown"  # the worker does not know the task (not arrived yet, or lost)
    UNSUPPORTED = "unsupported"  # the worker cannot cancel (a seed-built one)
    UNREACHABLE = "unreachable"


def answer_of(response: pb.ExecuteTaskResponse) -> DispatchAnswer:
    """A worker's answer to a dispatch, as a domain value."""
    if response.accepted:
        return DispatchAnswer(Answer.ACCEPTED)
    if response.reject_reason in (pb.REJECT_REASON_RESOURCE_EXHAUSTED, pb.REJECT_REASON_SHUTTING_DOWN):
        return DispatchAnswer(Answer.BUSY, response.message)
    return DispatchAnswer(Answer.REJECTED, response.message or "no reason given")
