"""How an A2A message names a capability and its arguments, and how it answers a task's question.

A message that starts a task names the capability in one of two ways:

- a data part `{"capability": "word_count", "params": {"text": "a b c"}}` (the usual way);
- `message.metadata.capability`, the arguments then being a data part holding the params object, or text:
  a JSON object, or, for a capability that takes exactly one text parameter, that parameter's value.

A message on a task waiting for input (`message.task_id` set, state input-required) answers the question:
the value of its first data part, else its text (read as JSON when the question's schema asks for something
other than a string and the text is JSON). `metadata.request_id` may name the question it answers.

JSON in data parts travels as `google.protobuf.Value`, which keeps every number as a double: whole numbers
are read back as integers here (`2.0` → `2`), so an integer parameter gets the integer it was sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from a2a.types import InvalidParamsError, Message, Part
from google.protobuf import json_format, struct_pb2

from worker_abstraction.exchanges import InputRequest
from worker_abstraction.types import ParameterSpec

CAPABILITY_KEY = "capability"  # names the capability, in a data part or in the message's metadata
PARAMS_KEY = "params"  # the arguments object, beside CAPABILITY_KEY in a data part
REQUEST_ID_KEY = "request_id"  # the question a status message asks, or an answer answers (metadata)
SCHEMA_KEY = "schema"  # the JSON Schema an answer must satisfy (a question's metadata)

ParametersOf = Callable[[str], Sequence[ParameterSpec] | None]  # a capability's parameters (None: unknown)


@dataclass(frozen=True, slots=True)
class Call:
    """What a message asks for: a capability and its arguments."""

    capability: str
    params: dict[str, Any]


def json_of(value: struct_pb2.Value | struct_pb2.Struct) -> Any:
    """A protobuf JSON value as Python, whole numbers as integers."""
    return _whole(json_format.MessageToDict(value))


def value_of(data: Any) -> struct_pb2.Value:
    """A JSON value as a protobuf Value (what a data part holds)."""
    value = struct_pb2.Value()
    json_format.ParseDict(data, value)
    return value


def data_part(data: Any) -> Part:
    return Part(data=value_of(data), media_type="application/json")


def text_part(text: str) -> Part:
    return Part(text=text, media_type="text/plain")


def part_of(value: Any) -> Part:
    """A value as a part: text for a string, JSON data for anything else."""
    return text_part(value) if isinstance(value, str) else data_part(value)


def metadata_of(message: Message) -> dict[str, Any]:
    found = json_of(message.metadata) if message.HasField("metadata") else {}
    return found if isinstance(found, dict) else {}


def data_of(parts: Sequence[Part]) -> list[Any]:
    """The values of the data parts, in order."""
    return [json_of(part.data) for part in parts if part.HasField("data")]


def values_of(parts: Sequence[Part]) -> list[Any]:
    """What the parts carry, in order: text as a string, data as JSON, a file by its URL (raw bytes are left
    out)."""
    found: list[Any] = []
    for part in parts:
        kind = part.WhichOneof("content")
        if kind == "text":
            found.append(part.text)
        elif kind == "data":
            found.append(json_of(part.data))
        elif kind == "url":
            found.append(part.url)
    return found


def text_of(parts: Sequence[Part]) -> str:
    """The text parts, joined by new lines."""
    return "\n".join(part.text for part in parts if part.HasField("text"))


SKILL_KEYS = ("skill", "skill_id", "skillId")  # (metadata keys other clients name a skill by)


def call_of(message: Message, parameters_of: ParametersOf | None = None, sole: str | None = None) -> Call:
    """The capability a message names and its arguments.

    Args:
        message: the A2A message that starts a task.
        parameters_of: `capability -> Sequence[ParameterSpec] | None`, the parameters a capability takes
            (for a text message; None: unknown).
        sole: the one capability the agent offers, if it offers one only: what a message naming none calls
            (a plain text message from a client that knows nothing of our data parts).

    Raises:
        InvalidParamsError: the message names no capability, or its arguments are not an object.
    """
    data = data_of(message.parts)
    named = next((d for d in data if isinstance(d, dict) and CAPABILITY_KEY in d), None)
    metadata = metadata_of(message) if named is None else {}
    capability = named[CAPABILITY_KEY] if named is not None else metadata.get(CAPABILITY_KEY)
    for key in SKILL_KEYS:
        if not capability:
            capability = metadata.get(key)
    capability = capability or sole
    if not isinstance(capability, str) or not capability:
        raise InvalidParamsError(
            message=f'the message names no capability: send a data part {{"{CAPABILITY_KEY}": NAME, '
            f'"{PARAMS_KEY}": {{...}}}}, or metadata.{CAPABILITY_KEY} with the arguments as a data part'
        )
    if named is not None:
        params = named.get(PARAMS_KEY, {})
    else:
        objects = [d for d in data if isinstance(d, dict)]
        params = objects[0] if objects else _params_of_text(capability, text_of(message.parts), parameters_of)
    if not isinstance(params, dict):
        raise InvalidParamsError(message=f"the arguments of {capability!r} must be a JSON object")
    return Call(capability, params)


def _params_of_text(capability: str, text: str, parameters_of: ParametersOf | None) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    parameters: Sequence[ParameterSpec] = (parameters_of(capability) if parameters_of else None) or ()
    texts = [p for p in parameters if p.type == "string"]
    if len(texts) == 1 and all(p is texts[0] or not p.required for p in parameters):
        return {texts[0].name: text}
    names = ", ".join(p.name for p in parameters) or "unknown parameters"
    raise InvalidParamsError(
        message=f"{capability!r} takes {names}: send the arguments as a data part (a JSON object), "
        "or text holding a JSON object"
    )


def answer_of(message: Message, request: InputRequest | None) -> Any:
    """The answer a message gives to a task's question.

    Raises:
        InvalidParamsError: the message carries neither data nor text.
    """
    data = data_of(message.parts)
    if data:
        return data[0]
    text = text_of(message.parts)
    if not text and not any(part.HasField("text") for part in message.parts):
        raise InvalidParamsError(message="an answer needs a data part or a text part")
    schema = request.schema if request is not None else None
    wants = schema.get("type") if isinstance(schema, dict) else None
    if wants is not None and wants != "string":
        try:
            return _whole(json.loads(text))
        except ValueError:
            pass
    return text


def answered_request(message: Message) -> str:
    """The question a message says it answers (empty: whichever waits)."""
    found = metadata_of(message).get(REQUEST_ID_KEY, "")
    return found if isinstance(found, str) else ""


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole(item) for item in value]
    return value
