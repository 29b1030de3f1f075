"""Caller-side checking of task arguments against a capability's declared parameters.

The orchestrator runs this before a task is queued, so a bad call fails at the caller with every problem
listed and never reaches a worker. Types follow the contract's `ToolParameter.type`; constraints (enums,
ranges, patterns, nested shapes) follow `ToolParameter.json_schema` through `schemas` (jsonschema, with RE2).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from typing import Any

import jsonschema

from worker_abstraction import schemas
from worker_abstraction.codec import short
from worker_abstraction.types import PARAMETER_TYPES, CapabilitySpec

logger = logging.getLogger(__name__)

_MAX_LISTED = 20  # problems listed per parameter
_MAX_PROBLEM = 300  # characters per problem: a message quotes at most a short prefix of a value


def parameter_problems(spec: CapabilitySpec, params: Mapping[str, Any]) -> list[str]:
    """Every way `params` breaks `spec`'s parameter list (empty when the call is valid)."""
    problems: list[str] = []
    declared = {p.name for p in spec.parameters}
    for key in params:
        if key not in declared:
            takes = ", ".join(sorted(declared)) or "no parameters"
            problems.append(f"unknown parameter {short(key)} (capability {spec.name!r} takes: {takes})")
    for parameter in spec.parameters:
        if parameter.name not in params:
            if parameter.required:
                problems.append(f"missing required parameter {parameter.name!r} ({parameter.type})")
            continue
        value = params[parameter.name]
        json_type = PARAMETER_TYPES.get(parameter.type.lower(), "any")
        try:
            validator = schemas.validator(json_type, parameter.json_schema)
        except schemas.UnusableSchemaError as unusable:
            # A worker registered with a registry that let it through: only the type can be checked.
            _warn_once(spec.name, parameter.name, str(unusable))
            validator = schemas.validator(json_type, "")
        try:
            errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
        except Exception as unchecked:  # (e.g. a value nested too deep, a reference the schema cannot resolve)
            kind = type(unchecked).__name__
            problems.append(f"parameter {parameter.name!r} cannot be checked against its schema ({kind})")
            continue
        for error in errors[:_MAX_LISTED]:
            where = "".join(f"[{short(p)}]" for p in error.absolute_path)[:120]
            problems.append(f"parameter {parameter.name!r}{where}: {_message(error, value)}"[:_MAX_PROBLEM])
        if len(errors) > _MAX_LISTED:
            problems.append(f"parameter {parameter.name!r}: {len(errors) - _MAX_LISTED} more problems")
    return problems


def _message(error: jsonschema.ValidationError, value: Any) -> str:
    if error.validator == "type":
        return f"expects {error.validator_value}, got {_show(error.instance)}"
    return str(error.message)


def _show(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"an {'object' if isinstance(value, dict) else 'array'} of {len(value)}"
    text = json.dumps(value if not isinstance(value, str) else value[:60], default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


@functools.lru_cache(maxsize=1024)
def _warn_once(capability: str, parameter: str, problem: str) -> None:
    logger.warning(
        "capability %r parameter %r: schema ignored, only its type is checked: %s", capability, parameter, problem
    )


def answer_problems(schema_json: str, value_json: str) -> list[str]:
    """Every way an answer (JSON text) breaks the JSON Schema of the question it answers (empty: it is valid).

    A value that is not JSON, or too large, is a problem too. A question's schema was checked when it was asked.
    """
    if len(value_json) > MAX_ANSWER:
        return [f"the answer takes {len(value_json):,} characters as JSON; at most {MAX_ANSWER:,} are taken"]
    try:
        value = json.loads(value_json)
    except ValueError as error:
        return [f"the answer is not JSON ({short(str(error))}): {short(value_json)}"]
    try:
        validator = schemas.validator("any", schema_json)
        errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    except Exception as unchecked:  # (an unusable schema, a value nested too deep)
        return [f"the answer cannot be checked against the question's schema ({type(unchecked).__name__})"]
    problems = []
    for found in errors[:_MAX_LISTED]:
        where = "".join(f"[{short(p)}]" for p in found.absolute_path)[:120]
        problems.append(f"answer{where}: {_message(found, value)}"[:_MAX_PROBLEM])
    if len(errors) > _MAX_LISTED:
        problems.append(f"answer: {len(errors) - _MAX_LISTED} more problems")
    return problems


MAX_ANSWER = 1024 * 1024  # characters of an answer as JSON
