"""Limits through a daemon, in real time: a rate limit holds over any one-second window for tasks submitted
at once, `wa queue` shows the ones held back and when they may start, and the daemon's flags are checked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Gates
from worker_abstraction import InvalidParametersError, OrchestratorServer, RegistryServer, RemoteOrchestrator
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.main import build_parser
from worker_abstraction.orchestrator.core.gates import ConcurrencyLimit, RateLimit

pytestmark = pytest.mark.timeout(60)


async def test_a_rate_limit_through_a_daemon_holds_over_any_second_and_wa_queue_shows_what_waits(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates, capsys: pytest.CaptureFixture[str]
) -> None:
    await start_worker(max_concurrent_tasks=64)
    limits = {"rate_limits": [RateLimit.parse("echo", "10/s")], "concurrency_limits": [ConcurrencyLimit("wait_for", 1)]}
    async with OrchestratorServer(registry.address, port=0, **limits) as daemon:
        remote = RemoteOrchestrator(daemon.address)
        async with remote:
            await remote.wait_for_workers("echo", timeout_seconds=10)
            handles = [await remote.execute_task("echo", {"text": str(n)}) for n in range(25)]
            held = [await remote.execute_task("wait_for", {"name": "slow"}) for _ in range(3)]
            limited = {q.capability: q for q in await remote.limited_queues()}
            assert limited["echo"].waiting >= 10 and limited["echo"].limit == "10/s"
            assert 0 < (limited["echo"].starts_in_seconds or 0) <= 1.0
            args = build_parser(Settings.load({})).parse_args(["queue", "--orchestrator", daemon.address])
            assert await args.run(args) == 0
            shown = capsys.readouterr().out
            assert "echo:" in shown and "rate-limited (10/s)" in shown
            assert (
                "wait_for: 2 rate-limited (1 in flight (queue)); the first may start when one in flight ends" in shown
            )
            for handle in handles:
                await handle.result(timeout_seconds=20)
            records = [await remote.task(h.task_id) for h in handles]
            gates.open("slow")
            for handle in held:
                await handle.result(timeout_seconds=10)
    starts = sorted(r.attempts[0].started_at.timestamp() for r in records)
    most = max(sum(1 for t in starts if first <= t < first + 1.0) for first in starts)
    assert most <= 10, most
    assert starts[-1] - starts[0] >= 1.5  # 25 at 10 per second: more than two seconds' worth


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--rate-limit", "echo", "CAPABILITY=RATE"),
        ("--rate-limit", "echo=fast", "N/UNIT"),
        ("--concurrency-limit", "echo=two", "whole number"),
        ("--concurrency-limit", "echo=2,strategy=drop", "strategy"),
    ],
)
async def test_a_bad_limit_flag_is_a_usage_error_that_says_what_to_fix(flag: str, value: str, says: str) -> None:
    from worker_abstraction.cli import UsageError

    args = build_parser(Settings.load({})).parse_args(["orchestrator", "--port", "0", flag, value])
    with pytest.raises(UsageError, match=says):
        async with asyncio.timeout(10):
            await args.run(args)


async def test_limits_are_set_listed_and_removed_at_run_time_and_checked_against_the_workers(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    await start_worker()
    async with OrchestratorServer(registry.address, port=0) as daemon, RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("echo", timeout_seconds=10)
        made = await remote.set_limits(
            RateLimit.parse("echo", "5/s", key="param:text", burst=2), ConcurrencyLimit("wait_for", 3)
        )
        assert [(r.capability, r.count, r.window_seconds, r.key, r.burst) for r in made.rate_limits] == [
            ("echo", 5, 1.0, "param:text", 2)
        ]
        assert [(c.capability, c.max_in_flight) for c in (await remote.limits()).concurrency_limits] == [
            ("wait_for", 3)
        ]
        with pytest.raises(InvalidParametersError) as refused:
            await remote.set_limits(RateLimit.parse("no_such_capability", "1/s"), RateLimit.parse("echo", "1/s",
                                    key="param:nope"))  # fmt: skip
        said = str(refused.value)
        assert "no live worker offers capability 'no_such_capability'" in said and "no parameter 'nope'" in said
        assert (await remote.remove_limits("echo")).rate_limits == ()
        assert [c.capability for c in (await remote.limits()).concurrency_limits] == ["wait_for"]


async def test_wa_limits_sets_lists_and_removes(
    registry: RegistryServer, start_worker: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    await start_worker()
    async with OrchestratorServer(registry.address, port=0) as daemon:
        await daemon.orchestrator.wait_for_workers("echo", timeout_seconds=10)

        async def wa(*argv: str) -> int:
            args = build_parser(Settings.load({})).parse_args(["limits", *argv, "--orchestrator", daemon.address])
            async with asyncio.timeout(10):
                code: int = await args.run(args)
            return code

        assert await wa("set", "--rate", "echo=20/s,burst=5,key=param:text", "--concurrency", "echo=2") == 0
        assert "echo: at most 20/s, burst 5 per param:text starts" in capsys.readouterr().out
        assert await wa("list", "--json") == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed["concurrency_limits"] == [{"capability": "echo", "max_in_flight": 2, "key": "",
                                                 "strategy": "queue"}]  # fmt: skip
        assert await wa("set", "--rate", "nothing=1/s") == 2
        assert "no live worker offers capability 'nothing'" in capsys.readouterr().err
        assert await wa("remove", "echo") == 0
        assert capsys.readouterr().out == "no limits\n"
