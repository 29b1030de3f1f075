"""The team's capabilities as MCP tool definitions, and the watch that keeps them current.

A capability's parameters become the properties of the tool's input schema (each parameter's own JSON
Schema when it declares one, else its JSON type); a declared output schema becomes the tool's output
schema. MCP wants an object at the root of both: an output schema of another shape is wrapped as
`{"result": ...}`, and so is the structured output the tool returns (see `structured_output`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from worker_abstraction.errors import WorkerAbstractionError
from worker_abstraction.types import PARAMETER_TYPES, CapabilitySpec, ParameterSpec, WorkerInfo, WorkerState
from worker_abstraction.versions import preference

if TYPE_CHECKING:
    from mcp_types import Tool

logger = logging.getLogger(__name__)

RESULT_KEY = "result"  # the property a non-object output is wrapped in


@dataclass(frozen=True, slots=True)
class TeamTool:
    """One capability as an MCP tool: its spec, its input schema and its output schema (None: none declared).

    `wrapped` says the output schema is the capability's own inside `{"result": ...}`.
    """

    spec: CapabilitySpec
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    wrapped: bool

    @property
    def name(self) -> str:
        return self.spec.name

    def definition(self) -> Tool:
        """The tool as `tools/list` lists it."""
        from mcp_types import Tool

        return Tool(
            name=self.name,
            description=self.spec.description or None,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
        )

    def structured_output(self, output: Any) -> Any:
        """The task's output as the tool's `structuredContent` (None: the tool declares no output schema)."""
        if self.output_schema is None:
            return None
        return {RESULT_KEY: output} if self.wrapped else output


def output_schema_of(spec: CapabilitySpec) -> dict[str, Any] | None:
    """The output schema a capability declares, as a dict (None: it declares none).

    Read defensively: a spec from a worker that predates output schemas has no such field, and the field
    may hold the schema as JSON text or as a mapping.
    """
    declared = getattr(spec, "output_schema", None)
    if not declared:
        return None
    if isinstance(declared, str):
        try:
            declared = json.loads(declared)
        except ValueError:
            logger.warning("capability %s declares an output schema that is not JSON; ignored", spec.name)
            return None
    return dict(declared) if isinstance(declared, Mapping) else None


def tool_of(spec: CapabilitySpec) -> TeamTool:
    """The MCP tool for one capability."""
    properties: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for parameter in spec.parameters:
        schema = _parameter_schema(parameter)
        # A parameter's own "$defs" are referred to from its root ("#/$defs/X"), which is now the tool's root.
        definitions.update(schema.pop("$defs", None) or {})
        properties[parameter.name] = schema
    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [p.name for p in spec.parameters if p.required]
    if required:
        input_schema["required"] = required
    if definitions:
        input_schema["$defs"] = definitions
    declared = output_schema_of(spec)
    if declared is None or declared.get("type") == "object":
        return TeamTool(spec, input_schema, declared, wrapped=False)
    wrapped = {"type": "object", "properties": {RESULT_KEY: declared}, "required": [RESULT_KEY]}
    return TeamTool(spec, input_schema, wrapped, wrapped=True)


def _parameter_schema(parameter: ParameterSpec) -> dict[str, Any]:
    if parameter.json_schema:
        try:
            schema = json.loads(parameter.json_schema)
        except ValueError:
            schema = None
        if isinstance(schema, dict):
            schema = dict(schema)
            if parameter.description and "description" not in schema:
                schema["description"] = parameter.description
            return schema
    json_type = PARAMETER_TYPES.get(parameter.type, "any")
    schema = {} if json_type == "any" else {"type": json_type}
    if parameter.description:
        schema["description"] = parameter.description
    return schema


def tools_of(workers: Iterable[WorkerInfo]) -> dict[str, TeamTool]:
    """The tools the live workers offer, by name. Workers that offer a capability under one name with
    different specs (several versions, a rolling upgrade) give the tool of its newest version that is not
    deprecated (ties: the first in worker id order); a call may still run on any version."""
    chosen: dict[str, CapabilitySpec] = {}
    for worker in sorted(workers, key=lambda w: w.worker_id):
        if worker.state is WorkerState.EVICTED:
            continue
        for spec in worker.capabilities:
            known = chosen.get(spec.name)
            if known is None or preference(spec.semver, spec.deprecated) > preference(known.semver, known.deprecated):
                chosen[spec.name] = spec
    return {name: tool_of(spec) for name, spec in chosen.items()}


class ToolWatch:
    """The tools the daemon's live workers offer now, read again every `refresh_seconds`; `on_change` is
    awaited after each read that found another set of tools (the daemon offers no stream of its workers).

    Args:
        workers: reads the daemon's live workers (`RemoteOrchestrator.workers`).
        on_change: awaited with the new tools after a change.
        refresh_seconds: how often the workers are read.
    """

    def __init__(
        self,
        workers: Callable[[], Awaitable[list[WorkerInfo]]],
        on_change: Callable[[dict[str, TeamTool]], Awaitable[None]],
        *,
        refresh_seconds: float = 1.0,
    ) -> None:
        self._workers = workers
        self._on_change = on_change
        self._refresh = refresh_seconds
        self._tools: dict[str, TeamTool] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def tools(self) -> dict[str, TeamTool]:
        """The tools as of the latest read."""
        return self._tools

    async def start(self) -> None:
        """Read the tools once (so the first listing has them), then keep reading in the background.

        Raises:
            OrchestratorUnavailableError: the daemon could not be reached the first time.
        """
        self._tools = tools_of(await self._workers())
        self._task = asyncio.create_task(self._run(), name="wa-mcp-tool-watch")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            try:
                found = tools_of(await self._workers())
            except WorkerAbstractionError as error:  # the daemon restarts: keep the last tools, try again
                logger.warning("cannot read the daemon's workers: %s", error)
                continue
            if found != self._tools:
                logger.info("tools changed: %s", ", ".join(sorted(found)) or "none")
                self._tools = found
                await self._on_change(found)
