"""A worker and a caller in Node.js, built only from our proto (`examples/node-worker`, `examples/node-client`),
with our own registry, daemon, worker and `wa`: `wa submit` runs a task on the Node worker, the Node caller runs
tasks on it and on a Python worker, a refused call comes back as its status, and a Node worker that stops
leaves the registry. Skipped, saying why, when `node` or `npm` is not installed or the packages cannot be had."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from processes import FAST_REGISTRY, FAST_WORKER, REPO, Start, wa

from tests.conftest import eventually
from worker_abstraction import RemoteOrchestrator

pytestmark = pytest.mark.timeout(180)

EXAMPLES = REPO / "examples"
WAIT_SECONDS = 30.0


async def _installed(directory: Path) -> None:
    """`npm ci` in an example's directory, once (its node_modules kept, and ignored by git)."""
    if (directory / "node_modules" / "@grpc" / "grpc-js").is_dir():
        return
    process = await asyncio.create_subprocess_exec(
        "npm", "ci", "--no-audit", "--no-fund", cwd=directory,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(120):
        _, err = await process.communicate()
    if process.returncode != 0:
        pytest.skip(f"npm ci in {directory.name} failed (no registry?): {err.decode()[-300:]}")


async def _node(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "node", *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(WAIT_SECONDS):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def node_ready() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed: the Node examples cannot run here")
    await _installed(EXAMPLES / "node-worker")
    await _installed(EXAMPLES / "node-client")


@pytest.fixture
async def node_worker(node_ready: None) -> AsyncIterator[Callable[..., Awaitable[asyncio.subprocess.Process]]]:
    """Starts `node worker.js --registry ADDRESS` and returns once it serves; kills it at the end."""
    started: list[asyncio.subprocess.Process] = []

    async def _start(registry: str, *extra: str) -> asyncio.subprocess.Process:
        node = await asyncio.create_subprocess_exec(
            "node", "worker.js", "--registry", registry, *extra, cwd=EXAMPLES / "node-worker",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        started.append(node)
        assert node.stdout is not None
        async with asyncio.timeout(WAIT_SECONDS):
            ready = (await node.stdout.readline()).decode()
        assert " listening on " in ready, ready
        return node

    yield _start
    for node in started:
        if node.returncode is None:
            node.kill()
        await node.wait()


async def test_a_node_worker_and_a_node_caller_join_the_team(
    start: Start, node_worker: Callable[[str], Awaitable[asyncio.subprocess.Process]]
) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    node = await node_worker(registry.address)
    await start("worker", "_workers:EchoWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER)
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address)
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("word_count", timeout_seconds=WAIT_SECONDS)
        await remote.wait_for_workers("shout", timeout_seconds=WAIT_SECONDS)
        described = next(w for w in await remote.workers() if w.offers("word_count"))
        assert described.name == "node-worker" and described.capability("word_count") is not None

        submitted = await wa("submit", "word_count", "-p", "text=the quick brown fox", "--json",
                             "--orchestrator", daemon.address)  # fmt: skip
        assert submitted.code == 0, submitted.err
        result = json.loads(submitted.out.splitlines()[-1])
        assert result["output"] == {"words": 4, "language": "node"}

        client = EXAMPLES / "node-client"
        code, out, err = await _node("client.js", "--orchestrator", daemon.address, "--capability", "word_count",
                                     "--param", 'text="one two three"', cwd=client)  # fmt: skip
        assert code == 0, err
        assert out.splitlines()[-2:] == ["COMPLETED", '{"words":3,"language":"node"}']
        code, out, err = await _node("client.js", "--orchestrator", daemon.address, "--capability", "shout",
                                     "--param", 'text="from node"', cwd=client)  # fmt: skip
        assert code == 0 and json.loads(out.splitlines()[-1]) == {"result": "Processed: FROM NODE"}, err
        code, out, err = await _node("client.js", "--orchestrator", daemon.address, "--capability", "word_count",
                                     "--param", "text=3", cwd=client)  # fmt: skip
        assert code == 2 and "3" in err and "text" in err  # INVALID_ARGUMENT, with what to fix

        node.send_signal(signal.SIGTERM)  # it deregisters on its way out
        async with asyncio.timeout(WAIT_SECONDS):
            assert await node.wait() == 0

        async def gone() -> bool:
            return not any(w.offers("word_count") for w in await remote.workers())

        await eventually(gone, timeout_seconds=WAIT_SECONDS, what="the stopped Node worker leaves the registry")


async def test_node_workers_with_versions_and_session_keys(
    start: Start, node_worker: Callable[..., Awaitable[asyncio.subprocess.Process]]
) -> None:
    """Two Node workers of two versions: a range picks one, a canary split shares tasks between them, and the
    tasks of one session key all reach one worker, which keeps the key's count."""
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await node_worker(registry.address, "--version", "1.2.0")
    await node_worker(registry.address, "--version", "2.0.0")
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address)
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("word_count", count=2, timeout_seconds=WAIT_SECONDS)
        versions = sorted(w.capability("word_count").version for w in await remote.workers())  # type: ignore[union-attr]
        assert versions == ["1.2.0", "2.0.0"]
        for wanted, version in (("^2", "2.0.0"), ("~1.2", "1.2.0")):
            handle = await remote.execute_task(f"word_count@{wanted}", {"text": "a b"})
            assert (await handle.result(timeout_seconds=WAIT_SECONDS))["version"] == version

        client = EXAMPLES / "node-client"
        totals = []
        for text in ("one", "two three", "four five six"):
            code, out, err = await _node("client.js", "--orchestrator", daemon.address, "--capability", "word_count",
                                         "--param", f'text="{text}"', "--session-key", "cart-7",
                                         cwd=client)  # fmt: skip
            assert code == 0, err
            totals.append(json.loads(out.splitlines()[-1]))
        assert len({t["worker_id"] for t in totals}) == 1 and [t["session_total"] for t in totals] == [1, 3, 6]
        code, out, err = await _node("client.js", "--orchestrator", daemon.address, "--capability", "word_count",
                                     "--version", "^1", "--param", 'text="x"', cwd=client)  # fmt: skip
        assert code == 0 and json.loads(out.splitlines()[-1])["version"] == "1.2.0", err

        split = await wa("versions", "split", "word_count", "1.2.0=3", "2.0.0=1", "--orchestrator", daemon.address)
        assert split.code == 0, split.err
        ran = [
            (await (await remote.execute_task("word_count", {"text": "a"})).result(timeout_seconds=WAIT_SECONDS))
            for _ in range(40)
        ]
        assert sorted(r["version"] for r in ran).count("2.0.0") == 10  # (3:1, turn by turn)
