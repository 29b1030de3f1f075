"""Task arguments as the contract carries them: one JSON text per parameter, encoded and decoded here only.

JSON here is strict: no NaN or Infinity, and no lone UTF-16 surrogate (`"\\ud800"` decodes to a Python str
that no UTF-8 encoder, store or worker accepts). Numbers read from the wire's text are ASCII digits only.
"""

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
        if not key.isascii() and _surrogate_in(key):
            problems.append(f"parameter name {short(key)} {LONE_SURROGATE}")
            continue
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as error:
            problems.append(f"parameter {short(key)} is not JSON-serializable: {error}")
            continue
        # json.dumps writes every surrogate as a lowercase \\udXXX escape: only such a text can hold one.
        if "\\ud" in text and has_lone_surrogate(value):
            problems.append(f"parameter {short(key)} {LONE_SURROGATE}")
            continue
        encoded.append((key, text))
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
            value = _STRICT.decode(text)
        except (ValueError, RecursionError) as error:
            problems.append(f"parameter {short(key)}: value_json is not JSON ({_reason(error)}): {short(text)}")
            continue
        # A surrogate can only come from a \\u escape (the text itself is UTF-8); paired ones decode to one
        # character, so any surrogate left in the value is a lone one.
        if "\\u" in text and has_lone_surrogate(value):
            problems.append(f"parameter {short(key)}: value_json {LONE_SURROGATE}: {short(text)}")
            continue
        params[key] = value
    if problems:
        raise InvalidParametersError(problems)
    return params


def json_problem(text: str) -> str | None:
    """Why `text` is not strict JSON (NaN, Infinity and lone surrogates included), or None when it is."""
    try:
        value = _STRICT.decode(text)
    except (ValueError, RecursionError) as error:
        return f"is not JSON ({_reason(error)})"
    if "\\u" in text and has_lone_surrogate(value):
        return LONE_SURROGATE
    return None


def has_lone_surrogate(value: Any) -> bool:
    """Whether a string anywhere in a JSON-like value (object keys included) holds a surrogate code point."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _surrogate_in(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def ascii_decimal(text: str, *, max_digits: int) -> int | None:
    """`text` as a non-negative integer written in 1..`max_digits` ASCII digits, or None when it is not one.

    `int()` and `str.isdigit()` also take other scripts' digits ("١٢", "１２") and signs and spaces: a number
    read from the wire goes through here instead.
    """
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


# What a JSON text with a lone surrogate is told (`json_problem` answers exactly this for it).
LONE_SURROGATE = "holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape without its pair); send valid Unicode text"


def _surrogate_in(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _not_json(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON value")


# One decoder for every text (json.loads with an option makes a decoder per call: four times the cost).
_STRICT = json.JSONDecoder(parse_constant=_not_json)


def _reason(error: BaseException) -> str:
    return "nested too deep" if isinstance(error, RecursionError) else str(error)[:120]


def payload_bytes(encoded: EncodedParams) -> int:
    """About how many bytes the arguments take in a message (their names and JSON texts)."""
    return sum(len(key) + len(text) for key, text in encoded)


def short(value: Any) -> str:
    """A value as an error message may quote it: its repr, cut to a short prefix."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
