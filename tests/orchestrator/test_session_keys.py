"""Session keys: the tasks of one key go to one worker while it lives (soft affinity), other keys spread over the
workers, and when the key's worker is gone the key moves to another, whose first task of it is told
(`ctx.session_moved`). The same through a daemon, and the key travels to the worker in the contract."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from tests.conftest import GATES, Gates, eventually
from worker_abstraction import (
    AsyncOrchestrator,
    BaseWorker,
    OrchestratorServer,
    RegistryServer,
    RemoteOrchestrator,
    TaskContext,
    capability,
)

pytestmark = pytest.mark.timeout(60)


class WhereWorker(BaseWorker):
    @capability
    async def where(self, ctx: TaskContext) -> dict[str, Any]:
        """Say which worker ran it, and what it was told of its session."""
        return {"worker": ctx.worker_id, "key": ctx.session_key, "moved": ctx.session_moved}


async def _where(orchestrator: Any, key: str) -> dict[str, Any]:
    return dict(await (await orchestrator.execute_task("where", {}, session_key=key)).result(timeout_seconds=10))


async def test_a_keys_tasks_stay_on_one_worker_and_move_when_it_is_gone(
    registry: RegistryServer, start_worker: Any
) -> None:
    workers = [await start_worker(WhereWorker) for _ in range(3)]
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("where", count=3, timeout_seconds=10)
        first = [await _where(orchestrator, "cart-1") for _ in range(12)]
        assert len({ran["worker"] for ran in first}) == 1
        assert all(ran["key"] == "cart-1" and not ran["moved"] for ran in first)
        # Keys spread: 30 keys' first tasks do not all land on one worker.
        spread = Counter([(await _where(orchestrator, f"user-{n}"))["worker"] for n in range(30)])
        assert len(spread) == 3, spread
        home = first[0]["worker"]
        await next(w for w in workers if w.worker_id == home).stop(grace_seconds=0)

        async def forgotten() -> bool:
            return all(w.worker_id != home for w in await orchestrator.workers())

        await eventually(forgotten, timeout_seconds=10, what="the registry forgets the key's worker")
        moved = await _where(orchestrator, "cart-1")
        assert moved["worker"] != home and moved["moved"] is True
        after = [await _where(orchestrator, "cart-1") for _ in range(5)]
        assert {ran["worker"] for ran in after} == {moved["worker"]} and not any(ran["moved"] for ran in after)
        plain = await (await orchestrator.execute_task("where", {})).result(timeout_seconds=10)
        assert plain["key"] == "" and plain["moved"] is False


async def test_session_keys_through_the_daemon(registry: RegistryServer, start_worker: Any) -> None:
    for _ in range(2):
        await start_worker(WhereWorker)
    async with OrchestratorServer(registry.address, port=0) as daemon, RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("where", count=2, timeout_seconds=10)
        ran = [await _where(remote, "s-1") for _ in range(8)]
        assert len({r["worker"] for r in ran}) == 1 and {r["key"] for r in ran} == {"s-1"}


def test_bindings_are_bounded_and_a_forgotten_key_binds_again_as_new() -> None:
    from worker_abstraction.orchestrator.core.sessions import SessionBindings

    bindings = SessionBindings(max_sessions=2)
    assert bindings.bind("a", "w1", live={"w1", "w2"}) is False
    assert bindings.bind("a", "w2", live={"w1", "w2"}) is False and bindings.worker_of("a") == "w1"  # stays
    assert bindings.bind("a", "w2", live={"w2"}) is True and bindings.worker_of("a") == "w2"  # w1 gone: moves
    bindings.bind("b", "w2", live={"w2"})
    bindings.bind("c", "w2", live={"w2"})
    assert len(bindings) == 2 and bindings.worker_of("a") is None  # the least recently used went


class SlowWhereWorker(BaseWorker):
    max_concurrent_tasks = 1

    @capability
    async def where(self, ctx: TaskContext, gate: str = "") -> dict[str, Any]:
        """Say which worker ran it (holding its only slot until the test's `gate` opens, if it names one)."""
        if gate:
            await GATES.async_gate(gate).wait()
        return {"worker": ctx.worker_id, "key": ctx.session_key, "moved": ctx.session_moved}


class StatelessWhereWorker(WhereWorker):
    stateless = True


async def test_hard_affinity_waits_for_the_keys_busy_worker_and_soft_does_not(
    registry: RegistryServer, start_worker: Any, gates: Gates
) -> None:
    for _ in range(2):
        await start_worker(SlowWhereWorker)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("where", count=2, timeout_seconds=10)
        first = await (await orchestrator.execute_task("where", {}, session_key="k")).result(timeout_seconds=10)
        home = first["worker"]
        busy = await orchestrator.execute_task("where", {"gate": "busy"}, session_key="k")  # home's only slot
        hard = await orchestrator.execute_task("where", {}, session_key="k", session_hard=True)
        soft = await orchestrator.execute_task("where", {}, session_key="k")
        assert (await soft.result(timeout_seconds=10))["worker"] != home  # (soft: ran elsewhere at once)
        assert not hard.done() and hard.worker_id == ""  # (hard: waits for home, though the other is free)
        gates.open("busy")
        assert (await hard.result(timeout_seconds=10))["worker"] == home
        assert (await busy.result(timeout_seconds=10))["worker"] == home


async def test_hard_affinity_gives_up_on_a_gone_worker_after_its_wait_and_the_key_moves(
    registry: RegistryServer, start_worker: Any
) -> None:
    workers = [await start_worker(WhereWorker) for _ in range(2)]
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("where", count=2, timeout_seconds=10)
        home = (await _where(orchestrator, "cart")).get("worker")
        await next(w for w in workers if w.worker_id == home).stop(grace_seconds=0)

        async def forgotten() -> bool:
            return all(w.worker_id != home for w in await orchestrator.workers())

        await eventually(forgotten, timeout_seconds=10, what="the registry forgets the key's worker")
        waiting = await orchestrator.execute_task(
            "where", {}, session_key="cart", session_hard=True, session_wait_seconds=0.5
        )
        ran = await waiting.result(timeout_seconds=10)
        assert ran["worker"] != home and ran["moved"] is True
        record = await orchestrator.task(waiting.task_id)
        assert record.submitted_at is not None
        waited = (record.attempts[0].started_at - record.submitted_at).total_seconds()
        assert waited >= 0.4, waited  # (it waited for the gone worker before it gave up on it)


async def test_a_stateless_workers_tasks_are_not_bound_to_their_key(
    registry: RegistryServer, start_worker: Any
) -> None:
    for _ in range(3):
        await start_worker(StatelessWhereWorker)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("where", count=3, timeout_seconds=10)
        (spec,) = (await orchestrator.workers())[0].capabilities
        assert spec.stateless
        ran = Counter([(await _where(orchestrator, "same-key"))["worker"] for _ in range(12)])
        assert len(ran) == 3, ran  # (spread as if it had no key)


async def test_wa_submit_with_a_hard_session_key(
    registry: RegistryServer, start_worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker_abstraction.cli import UsageError
    from worker_abstraction.cli.config import Settings
    from worker_abstraction.cli.main import build_parser

    async def wa(*argv: str) -> int:
        args = build_parser(Settings.load({})).parse_args(list(argv))
        async with asyncio.timeout(10):
            code: int = await args.run(args)
        return code

    for _ in range(2):
        await start_worker(WhereWorker)
    async with OrchestratorServer(registry.address, port=0) as daemon:
        await daemon.orchestrator.wait_for_workers("where", count=2, timeout_seconds=10)
        ran = []
        for _ in range(4):
            code = await wa("submit", "where", "--session-key", "k", "--session-hard", "5", "--json",
                            "--orchestrator", daemon.address)  # fmt: skip
            assert code == 0
            ran.append(json.loads(capsys.readouterr().out.splitlines()[-1])["output"]["worker"])
        assert len(set(ran)) == 1
        with pytest.raises(UsageError, match="--session-key"):  # (`wa` prints it and exits 2)
            await wa("submit", "where", "--session-hard", "5", "--orchestrator", daemon.address)
