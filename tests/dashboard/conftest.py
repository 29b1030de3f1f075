"""A registry, a worker and an orchestrator daemon serving its dashboard, all on 127.0.0.1:0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GATES
from tests.hitl.workers import AskingWorker
from tests.workflows.steps import StepWorker
from worker_abstraction import RegistryServer, RetryPolicy, TaskContext, capability
from worker_abstraction.auth import Authenticator, TokenFile
from worker_abstraction.dashboard.server import DashboardServer
from worker_abstraction.errors import TaskFailedError
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

OPERATOR = "operator-token-01234567"
CLIENT = "client-token-0123456789"
TOKENS = f"""
[[principal]]
name = "operator/root"
roles = ["operator"]
token = "{OPERATOR}"

[[principal]]
name = "client/alice"
roles = ["client"]
token = "{CLIENT}"
"""


class DashboardDaemon(OrchestratorServer):
    """An orchestrator daemon on 127.0.0.1:0 with its dashboard beside it, on a free port (`dashboard`)."""

    def __init__(self, registry: str, *, auth: Authenticator | None = None, **options: Any) -> None:
        super().__init__(registry, port=0, auth=auth, **options)
        self.dashboard = DashboardServer.beside(self, port=0, auth=auth, tls=options.get("tls"))


POST = {"X-WA-Dashboard": "1"}  # what the page's own fetch sends with every POST
NO_RETRY = RetryPolicy(max_attempts=2, initial_backoff_seconds=0.01, retry_task_errors=True)


@pytest.fixture
async def daemon(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[DashboardDaemon]:
    await start_worker()
    async with DashboardDaemon(registry.address) as server:
        await server.orchestrator.wait_for_workers("echo", timeout_seconds=5)
        yield server


@pytest.fixture
async def stored(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[DashboardDaemon]:
    """A daemon with a SQLite store that keeps a single finished task in memory: lists and pages of finished
    tasks must come from the store."""
    await start_worker()
    path = str(tmp_path / "tasks.db")
    async with DashboardDaemon(registry.address, store_path=path, keep_finished=1) as server:
        await server.orchestrator.wait_for_workers("echo", timeout_seconds=5)
        yield server


@pytest.fixture
async def flows(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[DashboardDaemon]:
    """A daemon with a SQLite store keeping one finished task in memory, and a worker whose capabilities are
    workflow steps (`tests.workflows.steps.StepWorker`: `numbers`, `double`, `total`, `gate`, `fail`, `note`)."""
    await start_worker(StepWorker, max_concurrent_tasks=16)
    path = str(tmp_path / "flows.db")
    async with DashboardDaemon(registry.address, store_path=path, keep_finished=1) as server:
        await server.orchestrator.wait_for_workers("gate", timeout_seconds=5)
        yield server


class StreamingAsker(AskingWorker):
    """AskingWorker (`review`, `twice`, `tokens`, `rows`, `noop`) and `drip`, which streams in two parts."""

    @capability
    async def drip(self, gate: str, first: list[str], then: list[str], ctx: TaskContext) -> int:
        """Stream `first`, wait until the test opens the gate called `gate`, stream `then`."""
        for word in first:
            ctx.emit(word)
        await GATES.async_gate(gate).wait()
        for word in then:
            ctx.emit(word)
        return len(first) + len(then)


GATED = "noop"  # the capability whose every task waits for approval on the `asking` daemon


@pytest.fixture
async def asking(registry: RegistryServer, start_worker: Callable[..., Any]) -> AsyncIterator[DashboardDaemon]:
    """A daemon whose every `noop` task waits for an operator's approval, and a worker whose handlers ask
    questions and stream output (`StreamingAsker`)."""
    await start_worker(StreamingAsker)
    async with DashboardDaemon(registry.address, approval_required=[GATED]) as server:
        await server.orchestrator.wait_for_workers("drip", timeout_seconds=5)
        yield server


@pytest.fixture
def authenticator(tmp_path: Path) -> Authenticator:
    path = tmp_path / "tokens.toml"
    path.write_text(TOKENS)
    # The daemon's own callers (the worker, the registry) are not checked here: only the dashboard uses it.
    return Authenticator(TokenFile(path, check_every_seconds=0))


@pytest.fixture
async def http(daemon: DashboardDaemon) -> AsyncIterator[httpx.AsyncClient]:
    assert daemon.dashboard is not None
    async with httpx.AsyncClient(base_url=daemon.dashboard.url, timeout=10) as client:
        yield client


async def finished(daemon: OrchestratorServer, capability: str, **params: Any) -> str:
    """A task run to its end (completed or not): its id."""
    handle = await daemon.orchestrator.execute_task(capability, params)
    await handle.wait(timeout_seconds=10)
    return handle.task_id


async def dead_letter(daemon: OrchestratorServer, message: str = "boom") -> str:
    """A task that fails twice with a retryable error, and so ends in the dead-letter queue: its id."""
    handle = await daemon.orchestrator.execute_task("explode", {"message": message}, retry_policy=NO_RETRY)
    with pytest.raises(TaskFailedError):
        await handle.result(timeout_seconds=10)
    return handle.task_id


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """The server-sent events of a streaming response: (event name, parsed data)."""
    kind, data = "message", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
