"""Measuring primitives: sequential latency, throughput at N in flight, percentiles, rounds → figures."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.procs import CpuWatch

Operation = Callable[[], Awaitable[object]]


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# A floor measured under a load (the registry's heartbeats against a server answering a constant) is sound while
# its p50 stays near an idle call's: within this factor, plus 1.5 ms for the beats one tick of the load
# generator sends together (10 at 2,000 beats/s: a sound floor's p50 was 1.3-2.3 ms against 0.13-0.43 ms idle
# on 2 vCPUs; saturated ones 5 ms to 1 s). Past it the machine itself is saturated (the load generator and
# the server share its cores), and a ratio to that floor says nothing about the server under test.
SOUND_LATENCY_FACTOR = 5.0
SOUND_LATENCY_SLACK_MS = 1.5


def loaded_latency_is_sound(loaded_p50_ms: float, unloaded_p50_ms: float) -> bool:
    """Whether a latency measured under load is still near an idle call's (see SOUND_LATENCY_FACTOR)."""
    return loaded_p50_ms <= SOUND_LATENCY_FACTOR * unloaded_p50_ms + SOUND_LATENCY_SLACK_MS


@dataclass(frozen=True)
class Figure:
    """One figure measured over several rounds: the median is reported, with the min–max spread."""

    rounds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def low(self) -> float:
        return min(self.rounds)

    @property
    def high(self) -> float:
        return max(self.rounds)


@dataclass
class Errors:
    """Exceptions seen while measuring, counted by type name (they are not retried)."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def record(self, error: BaseException) -> None:
        name = type(error).__name__
        self.counts[name] += 1
        self.examples.setdefault(name, str(error)[:300])

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def latencies(operation: Operation, count: int, errors: Errors) -> list[float]:
    """Run `operation` `count` times one after another; the seconds each successful call took."""
    samples: list[float] = []
    clock = time.perf_counter
    for _ in range(count):
        start = clock()
        try:
            await operation()
        except Exception as error:
            errors.record(error)
            continue
        samples.append(clock() - start)
    return samples


async def throughput(operation: Operation, count: int, in_flight: int, errors: Errors) -> float:
    """Run `operation` `count` times keeping `in_flight` calls going; successful calls per second."""
    remaining = count
    succeeded = 0

    async def lane() -> None:
        nonlocal remaining, succeeded
        while remaining > 0:
            remaining -= 1
            try:
                await operation()
            except Exception as error:
                errors.record(error)
            else:
                succeeded += 1

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(in_flight, count))))
    return succeeded / (time.perf_counter() - start)


@dataclass(frozen=True)
class LatencyFigures:
    p50_us: Figure
    p99_us: Figure
    per_second: Figure  # successful calls per second of each round, one call after the other


async def latency_rounds(
    operation: Operation, *, warmup: int, count: int, rounds: int, errors: Errors
) -> LatencyFigures:
    """Warm up, then `rounds` rounds of `count` sequential calls; per-round p50 and p99 in microseconds,
    and calls per second (the round's successful calls over its wall time)."""
    await latencies(operation, warmup, errors)
    rounds_made = [await latency_round(operation, count, errors) for _ in range(rounds)]
    return LatencyFigures(*(Figure(column) for column in zip(*rounds_made, strict=True)))


async def latency_round(operation: Operation, count: int, errors: Errors) -> tuple[float, float, float]:
    """One round of `count` sequential calls: p50 µs, p99 µs, calls per second."""
    started = time.perf_counter()
    samples = await latencies(operation, count, errors)
    elapsed = time.perf_counter() - started
    if not samples:
        raise RuntimeError(f"every call failed: {dict(errors.counts)} {errors.examples}")
    return percentile(samples, 50) * 1e6, percentile(samples, 99) * 1e6, len(samples) / elapsed


async def throughput_rounds(
    operation: Operation,
    *,
    warmup: int,
    count: int,
    in_flight: int,
    rounds: int,
    errors: Errors,
    cpu: CpuWatch | None = None,
) -> Figure:
    """Warm up, then `rounds` rounds of `count` calls at `in_flight`; calls per second per round.

    `cpu`, if given, watches the processes' CPU over the measured rounds (not the warm-up).
    """
    await throughput(operation, warmup, in_flight, errors)
    if cpu is not None:
        cpu.start()
    figure = Figure(tuple([await throughput(operation, count, in_flight, errors) for _ in range(rounds)]))
    if cpu is not None:
        cpu.stop()
    return figure


@dataclass
class Results:
    """What a scenario measured: figures over rounds, plus single values (CPU shares, error counts...)."""

    figures: dict[str, Figure] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    # Floor figures that measured something else than the floor (e.g. a saturated machine) -> why; ratios to
    # them are left out, and the table says so.
    unsound: dict[str, str] = field(default_factory=dict)

    def merge(self, other: Results) -> None:
        self.figures.update(other.figures)
        self.extras.update(other.extras)
        self.unsound.update(other.unsound)
