"""Circuit breakers: a failing worker stops getting tasks, then gets one probe after the cool-down."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from worker_abstraction import AsyncOrchestrator, CapabilitySpec, RegistryClient, RegistryServer, WorkerInfo
from worker_abstraction.orchestrator.breaker import BreakerState, CircuitBreakers


def test_breaker_opens_half_opens_with_one_probe_and_closes() -> None:
    breakers = CircuitBreakers(failure_threshold=2, cooldown_seconds=10)
    now = time.monotonic()
    breakers.failed("w")
    assert breakers.allows("w", now)  # one failure is not a pattern
    breakers.failed("w")
    assert breakers.state("w", now) is BreakerState.OPEN and not breakers.allows("w", now)
    later = now + 11
    assert breakers.allows("w", later) and breakers.state("w", later) is BreakerState.HALF_OPEN
    breakers.dispatched("w")
    assert not breakers.allows("w", later)  # only one probe at a time
    breakers.succeeded("w")
    assert breakers.state("w", later) is BreakerState.CLOSED and breakers.states() == {}


def test_a_failed_probe_opens_the_breaker_again() -> None:
    breakers = CircuitBreakers(failure_threshold=1, cooldown_seconds=5)
    breakers.failed("w")
    later = time.monotonic() + 6
    assert breakers.state("w", later) is BreakerState.HALF_OPEN
    breakers.dispatched("w")
    breakers.failed("w")
    assert breakers.state("w") is BreakerState.OPEN


async def test_an_unreachable_worker_is_skipped_once_its_circuit_opens(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    good = await start_worker()
    dead = WorkerInfo(
        worker_id="dead",
        name="dead",
        address="127.0.0.1:9",  # nothing listens there
        capabilities=tuple(c for c in type(good).capability_specs() if c.name == "echo") or (CapabilitySpec("echo"),),
    )
    client = RegistryClient(registry.address)
    await client.register(dead)
    try:
        async with AsyncOrchestrator(
            registry.address, breaker_failure_threshold=1, breaker_cooldown_seconds=60
        ) as orchestrator:
            await orchestrator.wait_for_workers("echo", count=2, timeout_seconds=5)
            handles = [await orchestrator.execute_task("echo", {"text": str(i)}) for i in range(6)]
            assert [await h.result(timeout_seconds=10) for h in handles] == [{"text": str(i)} for i in range(6)]
            assert {h.worker_id for h in handles} == {good.worker_id}
            assert orchestrator.breaker_states() == {"dead": BreakerState.OPEN}
    finally:
        await client.aclose()
