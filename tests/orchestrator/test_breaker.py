"""Circuit breakers: a failing worker stops getting tasks, then gets one probe after the cool-down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from grpc import aio

from tests.orchestrator.unreachable import Unreachable
from worker_abstraction import (
    AsyncOrchestrator,
    CapabilitySpec,
    RegistryClient,
    RegistryServer,
    WorkerInfo,
    WorkerState,
)
from worker_abstraction.orchestrator.core.breaker import BreakerState, CircuitBreakers
from worker_abstraction.orchestrator.edge.link import WorkerLinks


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


async def test_a_registration_nobody_answers_for_never_gets_a_task(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    good = await start_worker()
    dead = WorkerInfo(worker_id="dead", name="dead", address="127.0.0.1:9", capabilities=(CapabilitySpec("echo"),))
    client = RegistryClient(registry.address)
    await client.register(dead)  # nothing listens at port 9
    try:
        async with AsyncOrchestrator(registry.address) as orchestrator:
            await orchestrator.wait_for_workers("echo", timeout_seconds=5)
            handles = [await orchestrator.execute_task("echo", {"text": str(i)}) for i in range(6)]
            assert [await h.result(timeout_seconds=10) for h in handles] == [{"text": str(i)} for i in range(6)]
            assert {a.worker_id for h in handles for a in h.attempts} == {good.worker_id}
            health = {h.worker.worker_id: h for h in await orchestrator.worker_health()}
            assert health["dead"].state is WorkerState.SUSPECT and "probe" in health["dead"].state_reason
    finally:
        await client.aclose()


async def test_a_worker_whose_dispatches_fail_has_its_circuit_opened(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    good, failing = await start_worker(), await start_worker()
    down = asyncio.Event()

    def channel(address: str) -> aio.Channel:
        interceptors = [Unreachable(down)] if address == failing.address else []
        return aio.insecure_channel(address, interceptors=interceptors)

    links = WorkerLinks(fast_path=False, channel_factory=channel)
    async with AsyncOrchestrator(
        registry.address, links=links, breaker_failure_threshold=1, breaker_cooldown_seconds=60
    ) as orchestrator:
        await orchestrator.wait_for_workers("echo", count=2, timeout_seconds=5)
        down.set()
        handles = [await orchestrator.execute_task("echo", {"text": str(i)}) for i in range(6)]
        assert [await h.result(timeout_seconds=10) for h in handles] == [{"text": str(i)} for i in range(6)]
        assert {h.worker_id for h in handles} == {good.worker_id}
        circuits = {h.worker.worker_id: h.circuit for h in await orchestrator.worker_health()}
        assert circuits == {good.worker_id: "closed", failing.worker_id: "open"}
