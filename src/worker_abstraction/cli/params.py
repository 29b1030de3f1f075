"""A parameter of `wa submit` as given (`-p KEY=VALUE`, `@FILE`) and as finally sent, once the capability's
declared types are known."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker_abstraction.types import PARAMETER_TYPES, CapabilitySpec


@dataclass(frozen=True, slots=True)
class Given:
    """A parameter value as given on the command line (or read from a file): its text, and what the text
    decodes to, JSON when it parses as JSON, else the text as it is. Which one is sent is settled once the
    capability's declared type is known (`settle`): `-p name=42` is the string "42" for a string parameter."""

    text: str
    value: Any


def decode(raw: str) -> Given:
    """A parameter value from its text (see `Given`)."""
    try:
        return Given(raw, json.loads(raw))
    except json.JSONDecodeError:
        return Given(raw, raw)


def settle(params: Mapping[str, Any], capability: CapabilitySpec | None) -> dict[str, Any]:
    """The values to send: a `Given`'s text where the capability declares a string and the text decodes to
    something else (a number, `true`, `null`), otherwise what it decodes to."""
    declared = {p.name: p.type.lower() for p in capability.parameters} if capability is not None else {}
    settled: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Given):
            as_text = PARAMETER_TYPES.get(declared.get(key, ""), "") == "string" and not isinstance(value.value, str)
            value = value.text if as_text else value.value
        settled[key] = value
    return settled
