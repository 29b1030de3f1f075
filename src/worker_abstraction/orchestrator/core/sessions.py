"""Session keys: the tasks of one key go to the worker the first of them went to, while it lives.

Soft affinity: among the workers with room for a task, the key's worker comes first; a full one lets the task
run elsewhere, and the key stays where it was. Once the key's worker is gone (it left the registry) the key
moves to the worker the next task of it goes to, and that task is told (`Task.session_moved`, the handler's
`ctx.session_moved`): what the old worker kept for the key is lost. The bindings are bounded (the least
recently used keys are forgotten first: their next task binds again, as a new key's would, and is not told).

Hard affinity (`TaskOptions.session_hard`): a task of a bound key waits for the key's worker, busy or gone (it
may come back: a worker restarted with its id), up to its session wait (`SESSION_WAIT_SECONDS` by default,
counted from its acceptance); then it goes as with soft affinity. A capability that declares itself stateless
(`@capability(stateless=True)`, or a worker's `stateless = True`) neither binds keys nor waits for them: its
tasks go wherever there is room.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container

from worker_abstraction.options import TaskOptions

MAX_SESSIONS = 100_000  # keys remembered at once
SESSION_WAIT_SECONDS = 30.0  # how long a hard-affine task waits for its key's worker, by default


def hard_until(options: TaskOptions, now: float) -> float:
    """Until when (the clock's) a task with these options waits for its key's worker (0: soft affinity)."""
    if not (options.session_hard and options.session_key):
        return 0.0
    return now + (options.session_wait_seconds or SESSION_WAIT_SECONDS)


class SessionBindings:
    """Which worker each session key's tasks go to."""

    def __init__(self, *, max_sessions: int = MAX_SESSIONS) -> None:
        self._workers: OrderedDict[str, str] = OrderedDict()
        self._max = max_sessions

    def __len__(self) -> int:
        return len(self._workers)

    def worker_of(self, key: str) -> str | None:
        """The worker the key is bound to (None: none yet, or forgotten)."""
        return self._workers.get(key)

    def bind(self, key: str, worker_id: str, *, live: Container[str]) -> bool:
        """The key's task goes to `worker_id`; True when the key moved there from a worker no longer `live`.

        A key bound to a live worker stays bound (its task ran elsewhere only for lack of room)."""
        bound = self._workers.get(key)
        if bound is not None and bound in live:
            self._workers.move_to_end(key)
            return False
        self._workers[key] = worker_id
        self._workers.move_to_end(key)
        while len(self._workers) > self._max:
            self._workers.popitem(last=False)
        return bound is not None and bound != worker_id
