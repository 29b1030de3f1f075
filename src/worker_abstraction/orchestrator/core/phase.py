"""Where a task's run is in its life (`Phase`)."""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    """Where a `TaskRun` is in its life::

    WAITING ──place──► SENDING ──accepted──► RUNNING ──terminal──► DONE
       ▲                  │ busy / unreachable   │ failed, retryable
       └──────────────────┴───────────── BACKOFF ◄┘

    and from any phase but DONE, once the run's hold is lost: ──► HANDED_OVER
    """

    APPROVAL = "approval"  # waits for an operator's approval (`approval`): then DELAYED or WAITING, or DONE
    DELAYED = "delayed"  # accepted, and not to start before its `not_before`: then WAITING
    WAITING = "waiting"  # in the scheduler's queue
    SENDING = "sending"  # placed on a worker, the dispatch on its way
    RUNNING = "running"  # the worker accepted it
    ASKING = "asking"  # its handler's question freed the worker's slot: it waits for the answer, on no worker
    BACKOFF = "backoff"  # an attempt failed; the next one waits for its back-off
    DONE = "done"
    HANDED_OVER = "handed over"  # its hold was lost: another replica carries the task on, this run does nothing
