"""Task arguments as the contract carries them: one JSON text per parameter, encoded and decoded here only."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from worker_abstraction.errors import InvalidParametersError

EncodedParams = tuple[tuple[str, str], ...]  # (name, JSON text) pairs


def encode_params(params: Mapping[str, Any]) -> EncodedParams:
    """Each argument as JSON text.

    Raises:
        InvalidParametersError: listing every name that is not a string and every value that is not JSON.
    """
    encoded, problems = [], []
    for key, value in params.items():
        if not isinstance(key, str):
            problems.append(f"parameter names must be strings, got {short(key)}")
            continue
        try:
            encoded.append((key, json.dumps(value, allow_nan=False)))
        except (TypeError, ValueError, RecursionError) as error:
            problems.append(f"parameter {short(key)} is not JSON-serializable: {error}")
    if problems:
        raise InvalidParametersError(problems)
    return tuple(encoded)


def decode_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Arguments decoded from their JSON texts.

    Raises:
        InvalidParametersError: listing every repeated name and every text that is not JSON.
    """
    params: dict[str, Any] = {}
    problems = []
    for key, text in pairs:
        if key in params:
            problems.append(f"parameter {short(key)} given twice")
            continue
        try:
            params[key] = json.loads(text)
        except (ValueError, RecursionError) as error:
            problems.append(f"parameter {short(key)}: value_json is not JSON ({error}): {short(text)}")
    if problems:
        raise InvalidParametersError(problems)
    return params


def payload_bytes(encoded: EncodedParams) -> int:
    """About how many bytes the arguments take in a message (their names and JSON texts)."""
    return sum(len(key) + len(text) for key, text in encoded)


def short(value: Any) -> str:
    """A value as an error message may quote it: its repr, cut to a short prefix."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
