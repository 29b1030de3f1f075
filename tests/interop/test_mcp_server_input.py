"""`wa mcp`: a task that asks for input (an input-required result on 2026-07-28, an elicitation request on
earlier revisions), and credentials: the HTTP caller's own token goes to the daemon, a wrong or missing one
is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from grpc import aio
from mcp import MCPError
from mcp.client.context import ClientRequestContext
from mcp_types import ElicitRequestParams, ElicitResult

from tests.conftest import ToolWorker
from tests.hitl.workers import AskingWorker
from tests.interop.mcp_fixtures import daemon_on, http_client, http_mcp, mcp_client
from worker_abstraction import OrchestratorServer, RegistryServer, RemoteOrchestrator, bearer
from worker_abstraction.auth import Authenticator, TokenFile
from worker_abstraction.bearer import bearer_interceptors

pytestmark = pytest.mark.timeout(60)

SYSTEM = "mcp-system-token-0123456789"  # what the in-process parts (and the MCP server itself) send
ALICE = "mcp-alice-token-0123456789"
OPERATOR = "mcp-operator-token-01234567"
TOKENS = f"""
[[principal]]
name = "system/test"
roles = ["worker", "orchestrator", "client"]
token = "{SYSTEM}"

[[principal]]
name = "client/alice"
roles = ["client"]
token = "{ALICE}"

[[principal]]
name = "operator/root"
roles = ["operator"]
token = "{OPERATOR}"
"""


@pytest.mark.parametrize(("transport", "mode"), [("http", "auto"), ("stdio", "legacy"), ("http", "legacy")])
async def test_a_question_is_asked_of_the_client_and_its_answer_goes_to_the_task(
    transport: str, mode: str, registry: RegistryServer, start_worker: Any
) -> None:
    await start_worker(AskingWorker)
    asked: list[ElicitRequestParams] = []

    async def answer(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params)
        if params.message == "Ship v4?":
            return ElicitResult(action="decline")
        return ElicitResult(action="accept", content={"approved": True, "note": "fine"})

    async with (
        daemon_on(registry) as daemon,
        mcp_client(transport, daemon.address, mode=mode, elicitation_callback=answer) as client,
    ):
        result = await client.call_tool("review", {"item": "v3"})
        assert not result.is_error
        assert result.structured_content == {"item": "v3", "answer": {"approved": True, "note": "fine"}}
        [question] = asked
        assert question.message == "Ship v3?"
        declined = await client.call_tool("review", {"item": "v4"})  # (declined: the task is canceled)
        assert declined.is_error


def _as_operator(address: str) -> aio.Channel:
    return aio.insecure_channel(address, interceptors=bearer_interceptors(OPERATOR))


@pytest.fixture
def system_token() -> Iterator[None]:
    bearer.use_token(SYSTEM)
    yield
    bearer.use_token(None)


async def test_with_tokens_on_the_callers_own_token_is_used_and_a_wrong_or_missing_one_refused(
    tmp_path: Path, system_token: None
) -> None:
    token_file = tmp_path / "tokens.toml"
    token_file.write_text(TOKENS)
    checks = Authenticator(TokenFile(token_file, check_every_seconds=0))
    async with RegistryServer(port=0, auth=checks) as registry:
        worker = ToolWorker(registry.address, heartbeat_interval_seconds=0.2, auth=checks)
        await worker.start()
        try:
            async with (
                OrchestratorServer(registry.address, port=0, auth=checks) as daemon,
                http_mcp(daemon.address, require_token=True) as (_, url),
            ):
                async with http_client(url, token=ALICE) as alice:
                    assert "echo" in {tool.name for tool in (await alice.list_tools()).tools}
                    result = await alice.call_tool("echo", {"text": "hi"})
                    assert not result.is_error
                async with RemoteOrchestrator(daemon.address, channel_factory=_as_operator) as operator:
                    records = await operator.tasks(capability="echo")
                assert [record.owner for record in records] == ["client/alice"]

                async with http_client(url, token="not-a-token-at-all") as stranger:
                    with pytest.raises(MCPError):
                        await stranger.list_tools()
                    with pytest.raises(MCPError):
                        await stranger.call_tool("echo", {"text": "hi"})
                async with httpx2.AsyncClient() as bare:
                    refused = await bare.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                assert refused.status_code == 401
        finally:
            await worker.stop(grace_seconds=0.5)
