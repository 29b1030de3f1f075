"""Circuit breakers, one per worker: stop sending work to a worker that keeps failing, then probe it.

CLOSED: tasks flow. After `failure_threshold` consecutive failures (transport errors, attempts lost
with the worker) the breaker OPENs: the worker gets no tasks for `cooldown_seconds`. Then it is
HALF_OPEN: exactly one task may go as a probe. A probe that ends well closes the breaker; one that fails
opens it again for another cool-down.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    opened_at: float = 0.0
    state: BreakerState = BreakerState.CLOSED
    probing: bool = False


class CircuitBreakers:
    """The breakers of every worker an orchestrator talks to."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown_seconds: float = 10.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._now = now
        self._breakers: dict[str, _Breaker] = {}

    def state(self, worker_id: str, now: float | None = None) -> BreakerState:
        breaker = self._breakers.get(worker_id)
        if breaker is None:
            return BreakerState.CLOSED
        if (
            breaker.state is BreakerState.OPEN
            and (now if now is not None else self._now()) - breaker.opened_at >= self.cooldown_seconds
        ):
            breaker.state, breaker.probing = BreakerState.HALF_OPEN, False
        return breaker.state

    def allows(self, worker_id: str, now: float) -> bool:
        """Whether the worker may get a task now (in HALF_OPEN: only while no probe is out)."""
        state = self.state(worker_id, now)
        if state is BreakerState.CLOSED:
            return True
        return state is BreakerState.HALF_OPEN and not self._breakers[worker_id].probing

    def dispatched(self, worker_id: str) -> None:
        breaker = self._breakers.get(worker_id)
        if breaker is not None and breaker.state is BreakerState.HALF_OPEN:
            breaker.probing = True

    def succeeded(self, worker_id: str) -> None:
        self._breakers.pop(worker_id, None)

    def failed(self, worker_id: str) -> None:
        breaker = self._breakers.setdefault(worker_id, _Breaker())
        breaker.failures += 1
        if breaker.state is BreakerState.HALF_OPEN or breaker.failures >= self.failure_threshold:
            breaker.state, breaker.opened_at, breaker.probing = BreakerState.OPEN, self._now(), False

    def states(self) -> dict[str, BreakerState]:
        """Workers whose breaker is not CLOSED."""
        return {w: s for w in list(self._breakers) if (s := self.state(w)) is not BreakerState.CLOSED}
