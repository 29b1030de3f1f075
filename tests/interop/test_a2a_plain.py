"""A client that knows nothing of our data parts: plain text to an agent that offers one capability runs it,
and a skill named in the message's metadata (`skill`, as other agents' clients do) is the capability."""

from __future__ import annotations

from typing import Any

import pytest
from a2a.types import InvalidParamsError, TaskState

from tests.dashboard.conftest import DashboardDaemon
from tests.interop.a2a_support import a2a_client, collect, said
from worker_abstraction import BaseWorker, RegistryServer, capability
from worker_abstraction.interop.a2a_messages import text_of

pytestmark = pytest.mark.timeout(30)


class OneSkill(BaseWorker):
    @capability
    async def shout(self, text: str) -> str:
        """Say it louder."""
        return text.upper()


class TwoSkills(OneSkill):
    @capability
    async def whisper(self, text: str) -> str:
        """Say it softer."""
        return text.lower()


async def test_plain_text_to_an_agent_of_one_capability_runs_it(registry: RegistryServer, start_worker: Any) -> None:
    await start_worker(OneSkill)
    async with DashboardDaemon(registry.address) as team:
        await team.orchestrator.wait_for_workers("shout", timeout_seconds=5)
        assert team.dashboard is not None
        async with a2a_client(team.dashboard.url, streaming=False) as client:
            [done] = await collect(client.send_message(said("hello there")))
    assert done.task.status.state == TaskState.TASK_STATE_COMPLETED
    assert text_of(done.task.artifacts[-1].parts) == "HELLO THERE"


async def test_a_skill_named_in_metadata_is_the_capability(registry: RegistryServer, start_worker: Any) -> None:
    await start_worker(TwoSkills)
    async with DashboardDaemon(registry.address) as team:
        await team.orchestrator.wait_for_workers("whisper", timeout_seconds=5)
        assert team.dashboard is not None
        async with a2a_client(team.dashboard.url, streaming=False) as client:
            [done] = await collect(client.send_message(said("Quiet Please", skill="whisper")))
            assert text_of(done.task.artifacts[-1].parts) == "quiet please"
            with pytest.raises(InvalidParamsError, match="names no capability"):  # (two capabilities: which one?)
                await collect(client.send_message(said("which one?")))
