"""Capability versions: a caller asks for a range and gets a worker of a version in it; an operator splits a
capability's tasks between versions by weight (a canary: 90/10 over 1,000 tasks); deprecated versions are
reported; a range no live worker satisfies is refused, naming the versions there are."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from worker_abstraction import (
    AsyncOrchestrator,
    BaseWorker,
    InvalidCapabilityError,
    InvalidParametersError,
    InvalidTaskOptionsError,
    NoWorkerError,
    OrchestratorServer,
    RegistryServer,
    RemoteOrchestrator,
    TaskContext,
    capability,
)
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.main import build_parser
from worker_abstraction.versions import Version, VersionError, VersionRange

pytestmark = pytest.mark.timeout(90)


class SummarizeV1(BaseWorker):
    @capability(name="summarize", version="1.4.0", deprecated="use ^2")
    async def run(self, ctx: TaskContext) -> str:
        return "1.4.0"


class SummarizeV2(BaseWorker):
    @capability(name="summarize", version="2.1.0")
    async def run(self, ctx: TaskContext) -> str:
        return "2.1.0"


class SummarizeSeed(BaseWorker):  # declares no version: 1.0.0
    @capability(name="summarize")
    async def run(self, ctx: TaskContext) -> str:
        return "1.0.0"


@pytest.mark.parametrize(
    ("wanted", "version", "allowed"),
    [
        ("^2", "2.5.0", True),
        ("^2", "3.0.0", False),
        ("^2", "2.0.0-rc.1", False),
        ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.3.0", False),
        (">=1.2 <3", "2.9.9", True),
        (">= 1.2 < 3", "3.0.0", False),
        ("2.1.0", "2.1.0", True),
        ("=2.1.0", "2.1.1", False),
        ("2.x", "2.9.0", True),
        ("2", "3.0.0", False),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        ("^1 || ^3", "3.1.0", True),
        ("^1 || ^3", "2.0.0", False),
        ("", "9.9.9", True),
        (">1", "1.9.0", False),
        ("<=2", "2.9.0", True),
        ("^1", "", True),  # (no version declared: 1.0.0)
        ("^2", "not-a-version", False),
    ],
)
def test_ranges_read_as_npm_and_cargo_do(wanted: str, version: str, allowed: bool) -> None:
    assert VersionRange.parse(wanted).allows(version) is allowed


def test_versions_order_with_their_pre_releases_and_bad_ones_are_explained() -> None:
    assert Version.parse("2.0.0-rc.1") < Version.parse("2.0.0-rc.2") < Version.parse("2.0.0") < Version.parse("2.0.1")
    assert str(Version.parse("")) == "1.0.0"
    for bad in ("^", "two", "1.2.3.4", "1.x.3", "^2 ||"):
        with pytest.raises(VersionError, match="version range"):
            VersionRange.parse(bad)
    with pytest.raises(InvalidCapabilityError, match=r"MAJOR\.MINOR\.PATCH"):
        capability(version="2.0")
    with pytest.raises(InvalidTaskOptionsError, match="does not parse"):
        from worker_abstraction import TaskOptions

        TaskOptions(version="^^2")


async def test_a_range_picks_the_version_and_one_nobody_serves_is_refused(
    registry: RegistryServer, start_worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await start_worker(SummarizeV1)
    await start_worker(SummarizeV2)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("summarize", count=2, timeout_seconds=10)
        for _ in range(5):
            assert await (await orchestrator.execute_task("summarize@^2", {})).result(timeout_seconds=10) == "2.1.0"
            assert await (await orchestrator.execute_task("summarize", {}, version="~1.4")).result() == "1.4.0"
        anyone = {await (await orchestrator.execute_task("summarize", {})).result() for _ in range(10)}
        assert anyone == {"1.4.0", "2.1.0"}
        with pytest.raises(NoWorkerError) as refused:
            await orchestrator.execute_task("summarize@^3", {})
        assert "version ^3" in str(refused.value) and "version 2.1.0" in str(refused.value)
        with pytest.raises(InvalidTaskOptionsError):
            await orchestrator.execute_task("summarize@>>1", {})
    assert any("deprecated version 1.4.0: use ^2" in r.getMessage() for r in caplog.records)


async def test_a_canary_split_of_90_10_over_1000_tasks_lands_within_3_percent(
    registry: RegistryServer, start_worker: Any
) -> None:
    await start_worker(SummarizeSeed)
    await start_worker(SummarizeV2)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("summarize", count=2, timeout_seconds=10)
        splits = await orchestrator.set_version_split("summarize", {"1.0.0": 90, "^2": 10})
        assert splits == {"summarize": {"1.0.0": 90, "^2": 10}}
        counts: Counter[str] = Counter()
        async for handle in orchestrator.execute_many("summarize", ({} for _ in range(1000)), max_pending=50):
            counts[await handle.result()] += 1
        assert sum(counts.values()) == 1000
        assert abs(counts["1.0.0"] - 900) <= 30 and abs(counts["2.1.0"] - 100) <= 30, counts
        # Changed at run time: all of it to the new version; a caller's own range still holds within it.
        await orchestrator.set_version_split("summarize", {"1.0.0": 0, "^2": 1})
        ran = [await (await orchestrator.execute_task("summarize", {})).result() for _ in range(20)]
        assert set(ran) == {"2.1.0"}
        assert await (await orchestrator.execute_task("summarize@^1", {})).result() == "1.0.0"
        assert await orchestrator.set_version_split("summarize", {}) == {}
        with pytest.raises(InvalidParametersError, match="does not parse"):
            await orchestrator.set_version_split("summarize", {"^^1": 5})
        with pytest.raises(InvalidParametersError, match="at least one weight"):
            await orchestrator.set_version_split("summarize", {"^1": 0})


class BusyV1(BaseWorker):
    max_concurrent_tasks = 3

    @capability(name="render", version="1.0.0")
    async def render(self) -> str:
        await asyncio.sleep(0.002)  # (the work: its few slots are busy while tasks wait)
        return "1.0.0"


class BusyV2(BaseWorker):
    max_concurrent_tasks = 3

    @capability(name="render", version="2.0.0")
    async def render(self) -> str:
        await asyncio.sleep(0.002)
        return "2.0.0"


async def test_a_split_holds_under_load_when_every_slot_is_busy(registry: RegistryServer, start_worker: Any) -> None:
    """Tasks due to the busy 90 % version wait for its slots rather than spill over to the canary's."""
    await start_worker(BusyV1)
    await start_worker(BusyV2)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("render", count=2, timeout_seconds=10)
        await orchestrator.set_version_split("render", {"1.0.0": 90, "2.0.0": 10})
        counts: Counter[str] = Counter()
        async for handle in orchestrator.execute_many("render", ({} for _ in range(1000)), max_pending=200):
            counts[await handle.result()] += 1
        assert abs(counts["1.0.0"] - 900) <= 30 and abs(counts["2.0.0"] - 100) <= 30, counts


async def _wa(*argv: str) -> int:
    """`wa ARGV...` in this process; its exit code."""
    args = build_parser(Settings.load({})).parse_args(list(argv))
    async with asyncio.timeout(10):
        code: int = await args.run(args)
    return code


async def test_versions_and_splits_through_the_daemon_and_wa(
    registry: RegistryServer, start_worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    await start_worker(SummarizeV1)
    await start_worker(SummarizeV2)
    async with OrchestratorServer(registry.address, port=0) as daemon, RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("summarize", count=2, timeout_seconds=10)
        assert await (await remote.execute_task("summarize@^2", {})).result(timeout_seconds=10) == "2.1.0"
        at = ("--orchestrator", daemon.address)
        assert await _wa("submit", "summarize@>=2 <3", "--json", *at) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["output"] == "2.1.0"
        assert await _wa("versions", "split", "summarize", "1.4.0=0", "^2=1", *at) == 0
        shown = capsys.readouterr().out
        assert "summarize: 1.4.0 (1 worker, deprecated: use ^2), 2.1.0 (1 worker); split 1.4.0=0 ^2=1" in shown
        ran = [await (await remote.execute_task("summarize", {})).result(timeout_seconds=10) for _ in range(10)]
        assert set(ran) == {"2.1.0"}
        assert await _wa("versions", "list", "--json", *at) == 0
        assert json.loads(capsys.readouterr().out)["summarize"]["split"] == {"1.4.0": 0, "^2": 1}
        assert await _wa("versions", "split", "summarize", "^^2=1", *at) == 2
        assert "does not parse" in capsys.readouterr().err
        assert await _wa("versions", "clear", "summarize", *at) == 0
        assert "split" not in capsys.readouterr().out
        assert await _wa("workers", "--registry", registry.address) == 0
        table = capsys.readouterr().out
        assert "summarize@1.4.0(deprecated)" in table and "summarize@2.1.0" in table


def test_an_mcp_tool_and_an_a2a_skill_describe_the_newest_version_that_is_not_deprecated() -> None:
    from worker_abstraction import CapabilitySpec, WorkerInfo
    from worker_abstraction.interop.a2a_card import capabilities_of
    from worker_abstraction.interop.mcp_tools import tools_of

    def worker(worker_id: str, version: str, deprecated: str = "") -> WorkerInfo:
        spec = CapabilitySpec("summarize", f"v{version}", version=version, deprecated=deprecated)
        return WorkerInfo(worker_id, worker_id, "127.0.0.1:1", capabilities=(spec,))

    team = [worker("a", "3.0.0", deprecated="broken"), worker("b", "2.10.0"), worker("c", "2.9.0"), worker("d", "")]
    assert tools_of(team)["summarize"].definition().description == "v2.10.0"
    assert [spec.description for spec in capabilities_of(team)] == ["v2.10.0"]
