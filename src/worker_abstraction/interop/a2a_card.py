"""The team as an A2A agent card: each capability the live workers offer is a skill.

The card is made for each request from the workers the orchestrator knows then, so skills come and go as
workers join and leave. The team's card (`/.well-known/agent-card.json`) offers the JSON-RPC binding at
`/a2a` and the HTTP+JSON binding at `/a2a/rest`; one worker's card (`/a2a/workers/{id}/.well-known/
agent-card.json`) lists that worker's capabilities, and tasks sent to its JSON-RPC address (`/a2a/workers/
{id}`) run on that worker.

A skill's id is the capability's name. Its input schema (built from the capability's parameters) is in the
card's `CALL_EXTENSION` extension (`params.inputSchemas[name]`), with the message convention of
`a2a_messages`. With credentials on, the card declares the bearer scheme; a card read without a token
lists no skills (the full card comes with a token, or from GetExtendedAgentCard).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_1_0, TransportProtocol
from google.protobuf import struct_pb2

from worker_abstraction.interop.a2a_messages import CAPABILITY_KEY, PARAMS_KEY, json_of
from worker_abstraction.types import CapabilitySpec, ParameterSpec, WorkerInfo
from worker_abstraction.versions import preference

CALL_EXTENSION = "urn:worker-abstraction:a2a:capability-call"
JSONRPC_PATH = "/a2a"
REST_PATH = "/a2a/rest"
WORKERS_PATH = "/a2a/workers"
BEARER = "bearer"
MODES = ["application/json", "text/plain"]
_PLACEHOLDERS = {"string": "...", "integer": 1, "number": 1.5, "boolean": True, "object": {}, "array": []}


def input_schema(spec: CapabilitySpec) -> dict[str, Any]:
    """A capability's arguments as one JSON Schema object."""
    properties = {p.name: _parameter_schema(p) for p in spec.parameters}
    required = [p.name for p in spec.parameters if p.required]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _parameter_schema(parameter: ParameterSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    if parameter.json_schema:
        try:
            parsed = json.loads(parameter.json_schema)
        except ValueError:
            parsed = None
        schema = dict(parsed) if isinstance(parsed, dict) else {}
    if not schema and parameter.type != "any":
        schema = {"type": parameter.type}
    if parameter.description and "description" not in schema:
        schema["description"] = parameter.description
    return schema


def skill_of(spec: CapabilitySpec) -> AgentSkill:
    """A capability as an A2A skill (its id is the capability's name)."""
    example = {p.name: _PLACEHOLDERS.get(p.type, "...") for p in spec.parameters if p.required}
    return AgentSkill(
        id=spec.name,
        name=spec.name,
        description=spec.description or f"the capability {spec.name}",
        tags=["capability", *spec.required_tags],
        examples=[json.dumps({CAPABILITY_KEY: spec.name, PARAMS_KEY: example})],
        input_modes=MODES,
        output_modes=MODES,
    )


def capabilities_of(workers: Iterable[WorkerInfo]) -> list[CapabilitySpec]:
    """Each capability the workers offer, once, by name: the description of its newest version that is not
    deprecated (several versions may serve side by side; see `versions.preference`)."""
    found: dict[str, CapabilitySpec] = {}
    for worker in workers:
        for spec in worker.capabilities:
            known = found.get(spec.name)
            if known is None or preference(spec.semver, spec.deprecated) > preference(known.semver, known.deprecated):
                found[spec.name] = spec
    return [found[name] for name in sorted(found)]


def agent_card(
    workers: Iterable[WorkerInfo],
    base_url: str,
    *,
    secured: bool,
    with_skills: bool = True,
    worker: WorkerInfo | None = None,
    version: str = "",
) -> AgentCard:
    """The card of the team (or of one `worker`), served at `base_url` (the dashboard's address).

    Args:
        workers: the live workers (ignored when `worker` is given).
        base_url: the address the dashboard is reached at, e.g. `http://127.0.0.1:8080/`.
        secured: the daemon checks credentials: the card declares the bearer scheme.
        with_skills: list the skills (False: a card for a caller without credentials).
        worker: the one worker the card describes (None: the team).
        version: the agent's version (the package's).
    """
    root = base_url.rstrip("/")
    specs = capabilities_of([worker] if worker is not None else workers)
    if worker is not None:
        name = f"worker {worker.name or worker.worker_id}"
        description = f"One worker of the team ({worker.worker_id}); tasks sent here run on it."
        interfaces = [_interface(f"{root}{WORKERS_PATH}/{worker.worker_id}", TransportProtocol.JSONRPC)]
    else:
        name = "worker-abstraction team"
        description = "A team of workers: each skill is a capability, run by a live worker that offers it."
        interfaces = [
            _interface(f"{root}{JSONRPC_PATH}", TransportProtocol.JSONRPC),
            _interface(f"{root}{REST_PATH}", TransportProtocol.HTTP_JSON),
        ]
    card = AgentCard(
        name=name,
        description=description,
        supported_interfaces=interfaces,
        version=version or "0",
        capabilities=AgentCapabilities(
            streaming=True,
            push_notifications=False,
            extended_agent_card=secured,
            extensions=[_call_extension(specs if with_skills else [])],
        ),
        default_input_modes=MODES,
        default_output_modes=MODES,
        skills=[skill_of(spec) for spec in specs] if with_skills else [],
    )
    if secured:
        scheme = HTTPAuthSecurityScheme(
            scheme="Bearer", description="a token of the daemon's token file (role client or operator)"
        )
        card.security_schemes[BEARER].CopyFrom(SecurityScheme(http_auth_security_scheme=scheme))
        card.security_requirements.append(SecurityRequirement(schemes={BEARER: StringList()}))
    return card


def _interface(url: str, binding: str) -> AgentInterface:
    return AgentInterface(url=url, protocol_binding=binding, protocol_version=PROTOCOL_VERSION_1_0)


def _call_extension(specs: Iterable[CapabilitySpec]) -> AgentExtension:
    params = struct_pb2.Struct()
    params.update({"inputSchemas": {spec.name: input_schema(spec) for spec in specs}})
    return AgentExtension(
        uri=CALL_EXTENSION,
        description=(
            f'Name a skill with a data part {{"{CAPABILITY_KEY}": SKILL_ID, "{PARAMS_KEY}": {{...}}}} '
            "(or metadata.capability); params.inputSchemas holds each skill's arguments as JSON Schema."
        ),
        required=False,
        params=params,
    )


def input_schemas(card: AgentCard) -> dict[str, dict[str, Any]]:
    """The skills' input schemas a card of ours declares (none for another agent's card)."""
    for extension in card.capabilities.extensions:
        if extension.uri == CALL_EXTENSION:
            found = json_of(extension.params).get("inputSchemas", {})
            return {str(k): v for k, v in found.items() if isinstance(v, dict)} if isinstance(found, dict) else {}
    return {}
