"""Caller-side checking of task arguments against a capability's declared parameters.

The orchestrator runs this before a task is queued, so a bad call fails at the caller with every problem
listed and never reaches a worker. Types follow the contract's `ToolParameter.type`; constraints (enums,
ranges, patterns, nested shapes) follow `ToolParameter.json_schema` through the `jsonschema` library.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

from worker_abstraction.types import PARAMETER_TYPES, CapabilitySpec


def parameter_problems(spec: CapabilitySpec, params: Mapping[str, Any]) -> list[str]:
    """Every way `params` breaks `spec`'s parameter list (empty when the call is valid)."""
    problems: list[str] = []
    declared = {p.name for p in spec.parameters}
    for key in params:
        if key not in declared:
            takes = ", ".join(sorted(declared)) or "no parameters"
            problems.append(f"unknown parameter {key!r} (capability {spec.name!r} takes: {takes})")
    for parameter in spec.parameters:
        if parameter.name not in params:
            if parameter.required:
                problems.append(f"missing required parameter {parameter.name!r} ({parameter.type})")
            continue
        value = params[parameter.name]
        validator = _validator(PARAMETER_TYPES.get(parameter.type.lower(), "any"), parameter.json_schema)
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
            where = "".join(f"[{p!r}]" for p in error.absolute_path)
            problems.append(f"parameter {parameter.name!r}{where}: {_message(error, value)}")
    return problems


def _message(error: jsonschema.ValidationError, value: Any) -> str:
    if error.validator == "type":
        return f"expects {error.validator_value}, got {_show(error.instance)}"
    return str(error.message)


def _show(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


@functools.lru_cache(maxsize=1024)
def _validator(json_type: str, json_schema: str) -> Validator:
    schema: dict[str, Any] = json.loads(json_schema) if json_schema else {}
    if json_type not in ("any", "") and "type" not in schema and "anyOf" not in schema:
        schema["type"] = json_type
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator: Validator = validator_class(schema)
    return validator
