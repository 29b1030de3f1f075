"""Gates: rate limits and concurrency limits a waiting task must pass before it starts.

A `RateLimit` counts the task starts (dispatches, retries included) of a capability, per key if it has one,
and lets at most `count` of them happen in any window of `window_seconds`, at most `burst` back to back.
A `ConcurrencyLimit` keeps at most `max_in_flight` tasks of a capability per key started and not ended; a
task over it waits (`queue`), is canceled at once (`cancel_newest`), or cancels the older ones of its key
(`cancel_in_progress`: the newest is kept, as a debounce).

A limit's key is the task's fairness key (`fairness`), one of its arguments (`param:NAME`, e.g. a user
id), or none (the capability as a whole). Tasks over a limit are never refused (but by `cancel_newest`):
they wait in the queue, and the scheduler looks at them again when the gate opens (one timer).

Daemons sharing a home (NATS) each enforce an equal share of each limit: the limit divided by the number
of daemons up, rounded down (at least one start per window, one task in flight), so together they stay
within it.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from worker_abstraction.codec import short
from worker_abstraction.errors import InvalidParametersError

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*(ms|s|m|h|d|sec|min|hour|day)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0, "d": 86400.0,
          "day": 86400.0}  # fmt: skip
_KEY = re.compile(r"^(|fairness|param:[A-Za-z_][A-Za-z0-9_.-]{0,99})$")
WINDOW_MARGIN_SECONDS = 0.01  # see `_Window.wait`
MAX_KEYS = 100_000  # keys remembered per limit (idle ones are forgotten first)
STRATEGIES = ("queue", "cancel_newest", "cancel_in_progress")


def _check_key(key: str, problems: list[str]) -> None:
    if not isinstance(key, str) or not _KEY.match(key):
        problems.append(f"key {short(key)} must be empty (the whole capability), 'fairness' or 'param:NAME'")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `count` starts of `capability`'s tasks per `window_seconds` (per key), `burst` at once.

    `RateLimit.parse("send_email", "20/s", key="param:user_id", burst=5)` reads the usual forms: "20/s",
    "1000/h", "5/m", "100/10s".
    """

    capability: str
    count: int
    window_seconds: float = 1.0
    key: str = ""
    burst: int = 0  # 0: `count`

    @classmethod
    def parse(cls, capability: str, rate: str, *, key: str = "", burst: int = 0) -> RateLimit:
        found = _RATE.match(rate) if isinstance(rate, str) else None
        if found is None:
            raise InvalidParametersError([f"rate {short(rate)} is not N/UNIT, e.g. '20/s', '1000/h' or '100/10s'"])
        amount = float(found.group(2)) if found.group(2) else 1.0
        return cls(capability, int(found.group(1)), amount * _UNITS[found.group(3) or "s"], key, burst).check()

    def problems(self) -> list[str]:
        problems = []
        if not isinstance(self.capability, str) or not 1 <= len(self.capability) <= 256:
            problems.append("capability must name a capability (1-256 characters)")
        if not isinstance(self.count, int) or isinstance(self.count, bool) or not 1 <= self.count <= 1_000_000:
            problems.append(f"count must be 1..1000000 starts, got {short(self.count)}")
        window = self.window_seconds
        if not isinstance(window, int | float) or not math.isfinite(window) or not 0.001 <= window <= 86_400 * 31:
            problems.append(f"window_seconds must be 0.001..{86_400 * 31}, got {short(window)}")
        if not isinstance(self.burst, int) or isinstance(self.burst, bool) or not 0 <= self.burst <= 1_000_000:
            problems.append(f"burst must be 0 (the count) .. 1000000, got {short(self.burst)}")
        _check_key(self.key, problems)
        return problems

    def check(self) -> RateLimit:
        problems = self.problems()
        if problems:
            raise InvalidParametersError(problems)
        return self

    @classmethod
    def from_text(cls, text: str) -> RateLimit:
        """`CAPABILITY=RATE[,burst=N][,key=KEY]`, e.g. `send_email=20/s,burst=5,key=param:user_id`."""
        capability, rate, extra = _split(text, "CAPABILITY=RATE[,burst=N][,key=KEY]", ("burst", "key"))
        try:
            burst = int(extra.get("burst", "0"))
        except ValueError:
            raise InvalidParametersError([f"burst must be a whole number, got {short(extra['burst'])}"]) from None
        return cls.parse(capability, rate, key=extra.get("key", ""), burst=burst)

    def describe(self) -> str:
        window = f"{self.window_seconds:g}s" if self.window_seconds != 1 else "s"
        extra = f", burst {self.burst}" if self.burst else ""
        return f"{self.count}/{window}{extra}" + (f" per {self.key}" if self.key else "")


@dataclass(frozen=True, slots=True)
class ConcurrencyLimit:
    """At most `max_in_flight` of `capability`'s tasks per key started and not ended; `strategy` says what
    a task over it does: `queue` (wait), `cancel_newest` (it is canceled), `cancel_in_progress` (the older
    ones of its key are canceled)."""

    capability: str
    max_in_flight: int
    key: str = ""
    strategy: str = "queue"

    def problems(self) -> list[str]:
        problems = []
        if not isinstance(self.capability, str) or not 1 <= len(self.capability) <= 256:
            problems.append("capability must name a capability (1-256 characters)")
        n = self.max_in_flight
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1_000_000:
            problems.append(f"max_in_flight must be 1..1000000, got {short(n)}")
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy must be one of {', '.join(STRATEGIES)}, got {short(self.strategy)}")
        _check_key(self.key, problems)
        return problems

    @classmethod
    def from_text(cls, text: str) -> ConcurrencyLimit:
        """`CAPABILITY=N[,key=KEY][,strategy=S]`, e.g. `report=1,key=param:customer,strategy=cancel_in_progress`."""
        capability, count, extra = _split(text, "CAPABILITY=N[,key=KEY][,strategy=S]", ("key", "strategy"))
        if not count.isdecimal() or len(count) > 7:
            raise InvalidParametersError([f"{short(text)}: N must be a whole number of tasks, got {short(count)}"])
        return cls(capability, int(count), extra.get("key", ""), extra.get("strategy", "queue")).check()

    def check(self) -> ConcurrencyLimit:
        problems = self.problems()
        if problems:
            raise InvalidParametersError(problems)
        return self


@dataclass(frozen=True, slots=True)
class LimitSet:
    """The limits an orchestrator holds to (see `limits()` / `set_limits()`)."""

    rate_limits: tuple[RateLimit, ...] = ()
    concurrency_limits: tuple[ConcurrencyLimit, ...] = ()


class _Window:
    """One key's starts: a sliding log (at most `count` per window) and a bucket (at most `burst` at once)."""

    __slots__ = ("_bucket", "_filled_at", "_log")

    def __init__(self) -> None:
        self._log: deque[float] = deque()
        self._bucket = -1.0  # tokens (-1: full, not yet used)
        self._filled_at = 0.0

    def wait(self, count: int, window: float, burst: int, now: float) -> float:
        """Seconds until a start may happen (0: now)."""
        # The window is held a little wider than it is, so that a worker that times the starts as they
        # reach it (a few milliseconds later, each by its own delay) still finds at most `count` per window.
        window += WINDOW_MARGIN_SECONDS
        log = self._log
        while log and log[0] <= now - window:
            log.popleft()
        waits = [0.0]
        if len(log) >= count:
            waits.append(log[len(log) - count] + window - now)
        if burst < count:
            tokens = self._tokens(count, window, burst, now)
            if tokens < 1:
                waits.append((1 - tokens) * window / count)
        wait = max(waits)
        # (a wait left by rounding alone is none; a real one is at least a millisecond, so a timer set for
        # it always lands past it)
        return 0.0 if wait < 1e-6 else max(wait, 0.001)

    def start(self, count: int, window: float, burst: int, now: float) -> None:
        self._log.append(now)
        if burst < count:
            self._bucket = self._tokens(count, window, burst, now) - 1
            self._filled_at = now

    def idle(self, window: float, now: float) -> bool:
        return not self._log or self._log[-1] <= now - window

    def _tokens(self, count: int, window: float, burst: int, now: float) -> float:
        if self._bucket < 0 and not self._log:
            return float(burst)
        return min(float(burst), max(self._bucket, 0.0) + (now - self._filled_at) * count / window)


class Gates:
    """The limits of one engine, and what each key has used of them."""

    def __init__(
        self,
        rate_limits: Iterable[RateLimit] = (),
        concurrency_limits: Iterable[ConcurrencyLimit] = (),
        *,
        share: Callable[[], int] = lambda: 1,
    ) -> None:
        self._rates: dict[str, RateLimit] = {}
        self._concurrency: dict[str, ConcurrencyLimit] = {}
        self._share = share
        self._windows: dict[tuple[str, str], _Window] = {}
        self._in_flight: dict[tuple[str, str], int] = {}
        for limit in rate_limits:
            self.set_rate(limit)
        for each in concurrency_limits:
            self.set_concurrency(each)

    def set_rate(self, limit: RateLimit) -> None:
        self._rates[limit.check().capability] = limit

    def set_concurrency(self, limit: ConcurrencyLimit) -> None:
        self._concurrency[limit.check().capability] = limit

    def remove(self, capability: str) -> None:
        """Drop a capability's limits (its tasks waiting on them may start at once)."""
        self._rates.pop(capability, None)
        self._concurrency.pop(capability, None)

    @property
    def current(self) -> LimitSet:
        return LimitSet(tuple(self._rates.values()), tuple(self._concurrency.values()))

    @property
    def rate_limits(self) -> list[RateLimit]:
        return list(self._rates.values())

    @property
    def concurrency_limits(self) -> list[ConcurrencyLimit]:
        return list(self._concurrency.values())

    def describe(self, capability: str) -> str:
        """The limits of a capability, as set ("" for none)."""
        parts = []
        rate = self._rates.get(capability)
        if rate is not None:
            parts.append(rate.describe())
        concurrency = self._concurrency.get(capability)
        if concurrency is not None:
            per = f" per {concurrency.key}" if concurrency.key else ""
            parts.append(f"{concurrency.max_in_flight} in flight{per} ({concurrency.strategy})")
        return "; ".join(parts)

    def limited(self, capability: str) -> bool:
        return capability in self._rates or capability in self._concurrency

    def key_of(self, capability: str, fairness_key: str, params: Mapping[str, Any]) -> str:
        """The key a task of `capability` is limited under ("" when its capability has no keyed limit)."""
        rate, concurrency = self._rates.get(capability), self._concurrency.get(capability)
        kinds = [limit.key for limit in (rate, concurrency) if limit is not None and limit.key]
        if not kinds:
            return ""
        return "|".join(_value(kind, fairness_key, params) for kind in kinds)

    def strategy(self, capability: str) -> ConcurrencyLimit | None:
        return self._concurrency.get(capability)

    def wait(self, capability: str, key: str, now: float) -> float:
        """Seconds until a task of this capability and key may start (0: now; inf: when one in flight ends)."""
        concurrency = self._concurrency.get(capability)
        if concurrency is not None and self._in_flight.get((capability, key), 0) >= self._shared(
            concurrency.max_in_flight
        ):
            return math.inf
        rate = self._rates.get(capability)
        if rate is None:
            return 0.0
        window = self._windows.get((capability, key))
        if window is None:
            return 0.0
        count = self._shared(rate.count)
        return window.wait(count, rate.window_seconds, min(rate.burst or count, count), now)

    def started(self, capability: str, key: str, now: float) -> None:
        """A task starts (is dispatched): counted against the rate limit."""
        rate = self._rates.get(capability)
        if rate is None:
            return
        window = self._windows.get((capability, key))
        if window is None:
            if len(self._windows) >= MAX_KEYS:
                self._forget_idle(now)
            window = self._windows[(capability, key)] = _Window()
        count = self._shared(rate.count)
        window.start(count, rate.window_seconds, min(rate.burst or count, count), now)

    def occupy(self, capability: str, key: str) -> None:
        """A task holds a place in flight (until `vacate`)."""
        if capability in self._concurrency:
            self._in_flight[(capability, key)] = self._in_flight.get((capability, key), 0) + 1

    def vacate(self, capability: str, key: str) -> None:
        held = self._in_flight.get((capability, key), 0)
        if held <= 1:
            self._in_flight.pop((capability, key), None)
        else:
            self._in_flight[(capability, key)] = held - 1

    def in_flight(self, capability: str, key: str) -> int:
        return self._in_flight.get((capability, key), 0)

    def shared(self, amount: int) -> int:
        """This engine's share of a limit (see the module docstring)."""
        return self._shared(amount)

    def _shared(self, amount: int) -> int:
        return max(1, amount // max(1, self._share()))

    def _forget_idle(self, now: float) -> None:
        for found, window in list(self._windows.items()):
            rate = self._rates.get(found[0])
            if rate is None or window.idle(rate.window_seconds, now):
                del self._windows[found]


def _split(text: str, form: str, names: tuple[str, ...]) -> tuple[str, str, dict[str, str]]:
    head, _, rest = text.partition(",")
    capability, equals, value = head.partition("=")
    if not equals or not capability.strip() or not value.strip():
        raise InvalidParametersError([f"{short(text)} is not {form}"])
    extra: dict[str, str] = {}
    for part in filter(None, rest.split(",")):
        name, equals, given = part.partition("=")
        if not equals or name.strip() not in names:
            raise InvalidParametersError([f"{short(text)}: {short(part)} is not one of {', '.join(names)} (=VALUE)"])
        extra[name.strip()] = given.strip()
    return capability.strip(), value.strip(), extra


def _value(kind: str, fairness_key: str, params: Mapping[str, Any]) -> str:
    if kind == "fairness":
        return f"fairness={fairness_key}"
    name = kind.removeprefix("param:")
    value = params.get(name) if isinstance(params, Mapping) else None
    return f"{name}={short(value) if value is not None else ''}"
