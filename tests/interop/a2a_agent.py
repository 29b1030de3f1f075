"""A small A2A agent built only with the A2A SDK (its DefaultRequestHandler, AgentExecutor, InMemoryTaskStore
and Starlette routes), served by uvicorn in this process on 127.0.0.1:0: what A2AWorker wraps in the tests.

Skills (the message's `metadata.skill` names one):
- `reverse`: the text reversed, as one artifact.
- `letters`: streams each letter of the text as a chunk of one artifact (append, last_chunk), once the test
  opens the gate called `letters`; then completes.
- `stall`: works until canceled; `cancels` records the ids of the tasks the agent was asked to cancel.
- `confirm`: asks for input (input-required), then completes with what it was told.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from a2a.helpers import get_message_text, new_task_from_user_message, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part, TaskState
from starlette.applications import Starlette

from tests.conftest import GATES, eventually


class SkillAgent(AgentExecutor):
    """The agent's behaviour, one skill per branch."""

    def __init__(self) -> None:
        self.cancels: list[str] = []
        self.stalled = asyncio.Event()  # a `stall` task is running

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None and context.task_id and context.context_id
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        skill = str(context.message.metadata["skill"]) if "skill" in context.message.metadata else ""
        if task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED:
            skill = "confirm-answered"
        text = get_message_text(context.message)
        if skill == "reverse" and not text:
            await updater.failed(updater.new_agent_message([Part(text="nothing to reverse")]))
        elif skill == "reverse":
            await updater.start_work(updater.new_agent_message([Part(text="reversing")]))
            await updater.add_artifact([Part(text=text[::-1])], name="reversed")
            await updater.complete()
        elif skill == "letters":
            await updater.start_work(updater.new_agent_message([Part(text="spelling")]))
            await GATES.async_gate("letters").wait()
            for index, letter in enumerate(text):
                await updater.add_artifact(
                    [Part(text=letter)], artifact_id="letters", append=index > 0, last_chunk=index == len(text) - 1
                )
            await updater.complete(updater.new_agent_message([Part(text="spelled")]))
        elif skill == "stall":
            await updater.start_work()
            self.stalled.set()
            await asyncio.Event().wait()  # until the framework cancels it
        elif skill == "confirm":
            await updater.requires_input(updater.new_agent_message([Part(text=f"Really {text}?")]))
        elif skill == "confirm-answered":
            await updater.add_artifact([Part(text=f"confirmed: {text}")], name="answer")
            await updater.complete()
        else:
            await updater.failed(updater.new_agent_message([Part(text=f"no skill {skill!r}")]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        self.cancels.append(context.task_id)
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel(
            new_text_message("canceled", task_id=context.task_id, context_id=context.context_id)
        )


def skill(name: str, description: str) -> AgentSkill:
    return AgentSkill(id=name, name=name, description=description, tags=["test"])


def card(url: str) -> AgentCard:
    return AgentCard(
        name="test agent",
        description="An agent built with the A2A SDK alone",
        version="1.0.0",
        supported_interfaces=[AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            skill("reverse", "Reverse the text"),
            skill("letters", "Stream the letters of the text"),
            skill("stall", "Work until canceled"),
            skill("confirm", "Ask for a confirmation"),
        ],
    )


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # (the test run keeps its own signal handlers)


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[str, SkillAgent]]:
    """The agent served on 127.0.0.1:0: its base address and its executor."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    executor = SkillAgent()
    agent_card = card(url)
    handler = DefaultRequestHandler(executor, InMemoryTaskStore(), agent_card)
    routes: list[Any] = [*create_agent_card_routes(agent_card), *create_jsonrpc_routes(handler, rpc_url="/")]
    config = uvicorn.Config(Starlette(routes=routes), log_config=None, access_log=False, lifespan="off")
    config.timeout_graceful_shutdown = 1
    server = _Uvicorn(config)
    served = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or served.done(), what="the test agent serves")
        yield url, executor
    finally:
        server.should_exit = True
        await asyncio.gather(served, return_exceptions=True)
        await handler.aclose()
        sock.close()
