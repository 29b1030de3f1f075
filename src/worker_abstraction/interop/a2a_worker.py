"""A2AWorker: a remote A2A agent's skills served as capabilities of a worker.

When it starts, it reads the agent's card (`URL/.well-known/agent-card.json`; with a token and an agent
that offers one, its extended card) and serves each skill as a capability named by the skill's id (a name
our capabilities cannot take is made one: other characters become `_`). A task of one of them is one A2A
task on the agent, sent with the A2A SDK's client:

    the task's arguments                 one message: metadata {"capability": SKILL, "skill": SKILL}; for
                                         another agent's skill, argument `text` as a text part and `data` as
                                         a data part; for one of our agents', a data part holding the
                                         arguments object
    status working (its message)         progress: the message's text (metadata.progress, if a number)
    an artifact update                   streamed output: `ctx.emit` of each part (text, or JSON data); our
                                         own agents' `result` artifact is the output instead
    input-required                       `ctx.request_input(the status text, schema=metadata.schema)`; the
                                         answer goes back as a message on the same A2A task
    completed                            the output: artifact `result` if there is one, else the only part
                                         the artifacts (or the final status message) carry, else all their
                                         parts as a list
    failed, rejected, canceled           the task fails (RemoteAgentError, with the agent's message)
    our task canceled                    the A2A task is canceled (CancelTask)

The input schema of a skill is the one our own agents' cards declare (`a2a_card.CALL_EXTENSION`); another
agent's skill takes `text` (a string) and `data` (any JSON value), both optional.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.types import (
    AgentCard,
    AgentSkill,
    CancelTaskRequest,
    GetExtendedAgentCardRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import A2AError

from worker_abstraction.capability import CapabilityDef, schema_capability
from worker_abstraction.context import TaskContext
from worker_abstraction.errors import WorkerAbstractionError
from worker_abstraction.interop.a2a_card import input_schemas
from worker_abstraction.interop.a2a_messages import (
    CAPABILITY_KEY,
    REQUEST_ID_KEY,
    SCHEMA_KEY,
    data_part,
    metadata_of,
    part_of,
    text_of,
    text_part,
    values_of,
)
from worker_abstraction.interop.a2a_tasks import RESULT
from worker_abstraction.worker.base import BaseWorker

logger = logging.getLogger(__name__)

GENERIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "sent as the message's text part"},
        "data": {"description": "any JSON value, sent as the message's data part"},
    },
}
_ENDED = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.\-]")
CANCEL_SECONDS = 5.0  # how long the remote cancel of a canceled task may take
MAX_REFOLLOWS = 5  # streams in a row that end before their task does, after which the task fails


class RemoteAgentError(WorkerAbstractionError):
    """The remote A2A agent ended the task otherwise than completed, or could not be reached."""


class A2AWorker(BaseWorker):
    """A worker whose capabilities are the skills of the A2A agent at `url`.

    Args:
        registry: as for BaseWorker.
        url: the agent's base address (its card is at `url/.well-known/agent-card.json`).
        token: a bearer token for the agent (sent with every request, the card's too).
        timeout_seconds: the bound of each HTTP request but streams (which last as long as their task).
        **options: BaseWorker's options (host, port, name, tags, ...).
    """

    url = ""  # (a subclass made by `serving` carries its agent's address)

    def __init__(
        self,
        registry: str | None = None,
        *,
        url: str = "",
        token: str = "",
        timeout_seconds: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(registry, **options)
        self.url = url or type(self).url
        if not self.url:
            raise ValueError("A2AWorker needs the agent's url")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout_seconds, read=None))
        self._client: Client | None = None
        self.card: AgentCard | None = None

    @classmethod
    def serving(cls, url: str) -> type[A2AWorker]:
        """An A2AWorker class bound to the agent at `url` (for what takes a worker class, as `wa worker`)."""
        return type("A2AWorker", (cls,), {"url": url})

    async def start(self) -> None:
        """Read the agent's card, serve its skills, then start as any worker.

        Raises:
            RemoteAgentError: the card cannot be read.
        """
        try:
            card = await A2ACardResolver(self._http, self.url).get_agent_card()
            client = ClientFactory(ClientConfig(streaming=True, httpx_client=self._http)).create(card)
            if card.capabilities.extended_agent_card and "authorization" in self._http.headers:
                card = await client.get_extended_agent_card(GetExtendedAgentCardRequest())
                client = ClientFactory(ClientConfig(streaming=True, httpx_client=self._http)).create(card)
        except (A2AError, httpx.HTTPError, ValueError) as error:
            raise RemoteAgentError(f"cannot read the A2A agent card at {self.url}: {error}") from error
        self.card, self._client = card, client
        schemas = input_schemas(card)
        await self.set_capabilities(self._definition(skill, schemas.get(skill.id)) for skill in card.skills)
        logger.info("serving the %d skills of the A2A agent %r at %s", len(card.skills), card.name, self.url)
        await super().start()

    async def stop(self, grace_seconds: float = 10.0) -> None:
        await super().stop(grace_seconds)
        if self._client is not None:
            await self._client.close()
        await self._http.aclose()

    def _definition(self, skill: AgentSkill, schema: dict[str, Any] | None) -> CapabilityDef:
        async def handler(arguments: dict[str, Any], ctx: TaskContext) -> Any:
            assert self._client is not None
            return await _RemoteTask(self._client, skill.id, ctx, generic=schema is None).run(arguments)

        return schema_capability(
            capability_name(skill.id),
            handler,
            input_schema=schema or GENERIC_SCHEMA,
            description=skill.description or skill.name,
        )


def capability_name(skill_id: str) -> str:
    """A skill's id as a capability name (characters a name cannot hold become `_`)."""
    name = _NOT_NAME.sub("_", skill_id) or "skill"
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


class _RemoteTask:
    """One of our tasks run as one A2A task on the agent: its events become our progress, chunks, questions
    and output."""

    def __init__(self, client: Client, skill: str, ctx: TaskContext, *, generic: bool) -> None:
        self.client, self.skill, self.ctx, self.generic = client, skill, ctx, generic
        self.task_id = ""
        self.context_id = ""
        self.progress = 0.0
        self.parts: list[Any] = []  # the values of every artifact part, in order (what the output is made of)
        self.result: list[Any] | None = None  # our own agents' `result` artifact
        self.state: TaskState = TaskState.TASK_STATE_UNSPECIFIED
        self.said: list[Any] = []  # the last status message's parts
        self.question: tuple[str, Any, str] | None = None  # (prompt, schema, request id)
        self.identified = asyncio.Event()  # the agent said which task is ours

    async def run(self, arguments: dict[str, Any]) -> Any:
        watcher = asyncio.create_task(self._cancel_when_asked())
        refollows = 0
        try:
            stream = self.client.send_message(SendMessageRequest(message=self._call(arguments)))
            while True:
                await self._read(stream)
                if self.question is not None:
                    prompt, schema, request_id = self.question
                    self.question = None
                    value = await self.ctx.request_input(prompt, schema=schema)
                    stream = self.client.send_message(SendMessageRequest(message=self._answer(value, request_id)))
                    refollows = 0
                    continue
                if self.state not in _ENDED and self.task_id and refollows < MAX_REFOLLOWS:
                    # The stream ended before the task (a dropped connection): where does it stand?
                    refollows += 1
                    task = await self.client.get_task(GetTaskRequest(id=self.task_id))
                    if task.status.state not in _ENDED and task.status.state != TaskState.TASK_STATE_INPUT_REQUIRED:
                        stream = self.client.subscribe(SubscribeToTaskRequest(id=self.task_id))
                        continue
                    self._task(task)
                    if self.question is not None:
                        continue
                if self.state in _ENDED:
                    return self._outcome()
                raise RemoteAgentError(f"the agent's stream for {self.skill} ended before its task did")
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._cancel_remote())
            raise
        except A2AError as error:
            raise RemoteAgentError(f"the A2A agent failed the {self.skill} task: {error}") from error
        finally:
            watcher.cancel()

    def _call(self, arguments: dict[str, Any]) -> Message:
        if not self.generic:  # (a skill of our own agents: its arguments are the params object)
            parts = [data_part(arguments)]
        else:
            parts = [text_part(arguments["text"])] if "text" in arguments else []
            parts += [data_part(arguments["data"])] if "data" in arguments else []
            parts = parts or [data_part({})]  # (a message has at least one part, and no empty text)
        message = Message(role=Role.ROLE_USER, message_id=f"{self.ctx.task_id}.{self.ctx.attempt}", parts=parts)
        message.metadata.update({CAPABILITY_KEY: self.skill, "skill": self.skill})
        return message

    def _answer(self, value: Any, request_id: str) -> Message:
        message = Message(
            role=Role.ROLE_USER,
            message_id=uuid.uuid4().hex,
            task_id=self.task_id,
            context_id=self.context_id,
            parts=[part_of(value)],
        )
        if request_id:
            message.metadata.update({REQUEST_ID_KEY: request_id})
        return message

    async def _read(self, stream: AsyncIterator[StreamResponse]) -> None:
        """Take the stream's events until it ends or the task asks for input."""
        try:
            async for event in stream:
                kind = event.WhichOneof("payload")
                if kind == "message":
                    self.state, self.said = TaskState.TASK_STATE_COMPLETED, list(event.message.parts)
                    return
                if kind == "task":
                    self._task(event.task)
                elif kind == "status_update":
                    self._identify(event.status_update.task_id, event.status_update.context_id)
                    self._status(event.status_update.status.state, event.status_update.status.message)
                elif kind == "artifact_update":
                    self._artifact(event.artifact_update.artifact.name, event.artifact_update.artifact.parts)
                if self.question is not None or self.state in _ENDED:
                    return
        finally:
            closing = getattr(stream, "aclose", None)
            if closing is not None:
                await closing()

    def _identify(self, task_id: str, context_id: str) -> None:
        if task_id and not self.task_id:
            self.task_id, self.context_id = task_id, context_id
            self.identified.set()
            logger.debug("A2A task %s on the agent", task_id, extra={"task_id": self.ctx.task_id})

    def _task(self, task: Task) -> None:
        self._identify(task.id, task.context_id)
        if task.status.state in _ENDED and not self.parts and self.result is None:
            for artifact in task.artifacts:  # (a blocking answer: the whole task at once)
                self._artifact(artifact.name, artifact.parts)
        self._status(task.status.state, task.status.message)

    def _status(self, state: TaskState, message: Message) -> None:
        self.state = state
        self.said = list(message.parts)
        text = text_of(message.parts)
        metadata = metadata_of(message)
        if state == TaskState.TASK_STATE_INPUT_REQUIRED:
            request_id = metadata.get(REQUEST_ID_KEY, "")
            self.question = (text or "input required", metadata.get(SCHEMA_KEY), str(request_id))
        elif state == TaskState.TASK_STATE_WORKING and (text or "progress" in metadata):
            found = metadata.get("progress")
            if isinstance(found, int | float):
                self.progress = float(found)
            self.ctx.report_progress(self.progress, text)

    def _artifact(self, name: str, parts: Sequence[Part]) -> None:
        values = values_of(parts)
        if name == RESULT:
            self.result = [*(self.result or []), *values]
            return
        for value in values:
            self.parts.append(value)
            self.ctx.emit(value)

    def _outcome(self) -> Any:
        if self.state != TaskState.TASK_STATE_COMPLETED:
            said = text_of(self.said) or TaskState.Name(self.state)
            raise RemoteAgentError(f"the A2A agent's task {self.task_id} ended {TaskState.Name(self.state)}: {said}")
        for found in (self.result, self.parts, values_of(self.said)):
            if found:
                return found[0] if len(found) == 1 else found
        return None

    async def _cancel_when_asked(self) -> None:
        await self.ctx.wait_cancel_requested()
        await self.identified.wait()  # (asked before the agent named the task: cancel it once it does)
        await self._cancel_remote()

    async def _cancel_remote(self) -> None:
        if not self.task_id or self.state in _ENDED:
            return
        try:
            async with asyncio.timeout(CANCEL_SECONDS):
                await self.client.cancel_task(CancelTaskRequest(id=self.task_id))
        except (A2AError, TimeoutError) as error:
            logger.warning("canceling the A2A task %s failed: %s", self.task_id, error)
