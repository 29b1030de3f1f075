"""What a task exchanges with people and programs while it runs: streamed output, questions, answers, approvals.

- `OutputChunk`: one piece of output a handler streams as it works (`ctx.emit`), numbered 1, 2, 3, ... per
  task. The final output stays the task's result.
- `InputRequest` / `InputAnswer`: a handler's question (`ctx.request_input`) and the answer it was given,
  with who gave it. `InputExchange` pairs them as a task's record keeps them.
- `Approval`: an operator's decision on a task that had to be approved before it ran.

Free of protobuf (`_convert.exchanges` carries them on the wire).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker_abstraction.errors import InvalidAnswerError

MAX_PROMPT = 8 * 1024  # characters of a question's prompt
MAX_SCHEMA = 64 * 1024  # characters of a question's JSON Schema
MAX_REQUEST_ID = 128  # characters of a question's id
# A slot-freeing wait: the INPUT_REQUIRED update that ends its attempt carries this metadata key (its worker ran
# the handler up to the question and freed the slot), and a later attempt carries the answers given so far as
# `Task.metadata[ANSWERS]` (JSON: request id -> [value JSON, who answered, when in ns]), which the handler's
# questions are answered from again, in order, before it asks the next one.
SUSPENDED = "wa-suspended"
ANSWERS = "wa-answers"


def answer_json(value: Any) -> str:
    """An answer as the JSON text that carries it.

    Raises:
        InvalidAnswerError: the value is not a JSON value (NaN, an object of another kind...).
    """
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise InvalidAnswerError([f"the answer must be a JSON value: {error}"]) from None


def _when(nanoseconds: int) -> datetime | None:
    return datetime.fromtimestamp(nanoseconds / 1e9, UTC) if nanoseconds else None


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """One piece of a task's streamed output: text (`text`) or JSON (`data_json`), numbered from 1."""

    index: int
    text: str = ""
    data_json: str = ""
    last: bool = False  # the handler said no chunk follows

    @property
    def data(self) -> Any:
        """The chunk's value: its text, or its JSON decoded."""
        return json.loads(self.data_json) if self.data_json else self.text

    @property
    def size(self) -> int:
        """Characters it carries (what a log of chunks is bounded by)."""
        return len(self.text) + len(self.data_json)


@dataclass(frozen=True, slots=True)
class InputRequest:
    """A handler's question: its id (unique within the task), a prompt for a person, the JSON Schema an answer
    must satisfy (empty: any JSON value) and when the handler stops waiting (0: never)."""

    request_id: str
    prompt: str = ""
    schema_json: str = ""
    deadline_ns: int = 0  # wall clock, nanoseconds since the epoch

    @property
    def schema(self) -> dict[str, Any] | None:
        return json.loads(self.schema_json) if self.schema_json else None

    @property
    def deadline(self) -> datetime | None:
        return _when(self.deadline_ns)


@dataclass(frozen=True, slots=True)
class InputAnswer:
    """The answer given to a question, by whom (empty: credentials were off) and when."""

    request_id: str
    value_json: str
    answered_by: str = ""
    answered_at_ns: int = 0

    @property
    def value(self) -> Any:
        return json.loads(self.value_json)

    @property
    def answered_at(self) -> datetime | None:
        return _when(self.answered_at_ns)


@dataclass(frozen=True, slots=True)
class InputExchange:
    """One question of a task and its answer (None while it waits, or when nobody answered in time)."""

    request: InputRequest
    answer: InputAnswer | None = None
    asked_at_ns: int = 0
    attempt: int = 0

    @property
    def asked_at(self) -> datetime | None:
        return _when(self.asked_at_ns)


@dataclass(frozen=True, slots=True)
class Approval:
    """An operator's decision on a task that required approval."""

    approved: bool
    decided_by: str = ""
    reason: str = ""
    decided_at_ns: int = 0

    @property
    def decided_at(self) -> datetime | None:
        return _when(self.decided_at_ns)


def replayed(metadata: Mapping[str, str]) -> dict[str, InputAnswer]:
    """The answers a task's metadata carries from earlier attempts (`ANSWERS`); none when it carries none or
    they cannot be read."""
    text = metadata.get(ANSWERS, "")
    if not text:
        return {}
    try:
        found = json.loads(text)
        return {
            str(request_id): InputAnswer(str(request_id), str(value), str(by), int(when))
            for request_id, (value, by, when) in found.items()
        }
    except (ValueError, TypeError, AttributeError):
        return {}
