"""Rate and concurrency limits as the contract carries them."""

from __future__ import annotations

from collections.abc import Mapping

from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.errors import InvalidParametersError
from worker_abstraction.orchestrator.core.gates import ConcurrencyLimit, LimitSet, RateLimit


def limits_to_pb(limits: LimitSet) -> pb.Limits:
    return pb.Limits(
        rate_limits=[
            pb.RateLimitSpec(capability=r.capability, rate=f"{r.count}/{r.window_seconds:g}s", burst=r.burst, key=r.key)
            for r in limits.rate_limits
        ],
        concurrency_limits=[
            pb.ConcurrencyLimitSpec(
                capability=c.capability, max_in_flight=c.max_in_flight, key=c.key, strategy=c.strategy
            )
            for c in limits.concurrency_limits
        ],
    )


def limits_from_pb(message: pb.Limits) -> LimitSet:
    """The limits a message sets.

    Raises:
        InvalidParametersError: every problem of every limit.
    """
    problems: list[str] = []
    rates: list[RateLimit] = []
    for spec in message.rate_limits[:1000]:
        try:
            rates.append(RateLimit.parse(spec.capability, spec.rate, key=spec.key, burst=spec.burst))
        except InvalidParametersError as error:
            problems += [f"rate limit of {spec.capability[:60]!r}: {p}" for p in error.problems]
    concurrency: list[ConcurrencyLimit] = []
    for each in message.concurrency_limits[:1000]:
        made = ConcurrencyLimit(each.capability, each.max_in_flight, each.key, each.strategy or "queue")
        found = made.problems()
        if found:
            problems += [f"concurrency limit of {each.capability[:60]!r}: {p}" for p in found]
        else:
            concurrency.append(made)
    if len(message.rate_limits) > 1000 or len(message.concurrency_limits) > 1000:
        problems.append("set at most 1000 limits of each kind at once")
    if problems:
        raise InvalidParametersError(problems)
    return LimitSet(tuple(rates), tuple(concurrency))


def splits_to_pb(splits: Mapping[str, Mapping[str, int]]) -> pb.VersionSplits:
    return pb.VersionSplits(
        splits=[pb.VersionSplit(capability=name, weights=dict(weights)) for name, weights in sorted(splits.items())]
    )


def splits_from_pb(message: pb.VersionSplits) -> dict[str, dict[str, int]]:
    return {split.capability: dict(split.weights) for split in message.splits}
