"""A running task's questions on its worker (`ctx.request_input`), and the deadline that stops while it waits.

A handler asks; its task moves to INPUT_REQUIRED with the question (an id, a prompt, a JSON Schema and when
it stops waiting), and its orchestrator passes the answer on (`WorkerService.ProvideInput`), checked against
the schema here too. The handler's execution deadline stops while it waits, and starts again, with what was
left of it, once it goes on: waiting for a person does not count as running. A question has its own timeout:
past it the handler gets `InputTimeoutError` (and the task fails with it, unless the handler catches it).

Question ids are numbered per attempt ("input-1", "input-2", ...): the same handler asks the same questions in
the same order, so an id names the same question again in a later attempt.

**Waits that free the slot** (`@capability(frees_slot_on_input=True)`): a question ends the attempt instead
of waiting in it. The handler is unwound (`Suspended`, which `except Exception` does not catch), the task's
INPUT_REQUIRED update is marked `SUSPENDED`, and the slot is free at once. Once the question is answered, the
orchestrator sends the task again, to any capable worker, with every answer given so far (`ANSWERS`); the
handler runs from the start, and each question already answered returns its answer at once, in order. So
the handler must reach the same questions in the same order (deterministic up to each one: decide by its
arguments and the answers, not by the clock or chance), and what it does before a question may be done again
(make it idempotent, or keep it after the last question), as with any durable-execution replay. It survives
the death of the worker and the restart of the orchestrator while it waits.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from worker_abstraction.errors import InputTimeoutError, InvalidAnswerError, InvalidParametersError, TaskNotWaitingError
from worker_abstraction.exchanges import MAX_PROMPT, MAX_SCHEMA, InputAnswer, InputRequest
from worker_abstraction.worker.tasks import TaskRecord

MAX_INPUT_WAIT_SECONDS = 366 * 24 * 3600.0  # the longest a question may wait


class PausableDeadline:
    """The handler's execution deadline (an `asyncio.Timeout`), stopped while it waits for an answer."""

    __slots__ = ("_left", "scope")

    def __init__(self) -> None:
        self.scope: asyncio.Timeout | None = None  # set by the runner when the handler starts
        self._left: float | None = None

    def pause(self) -> None:
        scope = self.scope
        if scope is not None and (when := scope.when()) is not None:
            self._left = max(0.0, when - asyncio.get_running_loop().time())
            scope.reschedule(None)

    def resume(self) -> None:
        if self.scope is not None and self._left is not None:
            self.scope.reschedule(asyncio.get_running_loop().time() + self._left)
        self._left = None


class Questions:
    """The questions of one task's attempt on this worker: at most one waits at a time."""

    __slots__ = ("_asked", "_frees_slot", "_record", "_replay", "_waiting", "deadline")

    def __init__(
        self, record: TaskRecord, *, frees_slot: bool = False, replay: Mapping[str, InputAnswer] | None = None
    ) -> None:
        self._record = record
        self._frees_slot = frees_slot
        self._replay = replay or {}  # answers given in earlier attempts, by question id
        self._asked = 0
        self._waiting: tuple[InputRequest, asyncio.Future[InputAnswer]] | None = None
        self.deadline = PausableDeadline()

    @property
    def waiting(self) -> InputRequest | None:
        """The question waiting for an answer now (None: none)."""
        return self._waiting[0] if self._waiting is not None else None

    async def ask(self, prompt: str, schema: dict[str, Any] | str | None, timeout_seconds: float | None) -> InputAnswer:
        """Ask, wait for the answer (the execution deadline stopped meanwhile) and return it.

        Raises:
            InvalidParametersError: a prompt, schema or timeout that cannot be used (all listed).
            InputTimeoutError: nobody answered within `timeout_seconds`.
            RuntimeError: another question of this task is still waiting.
        """
        schema_json = _schema_text(schema)
        problems = _question_problems(prompt, schema_json, timeout_seconds)
        if problems:
            raise InvalidParametersError(problems)
        if self._waiting is not None:
            raise RuntimeError("this task waits for an answer already: ask one question at a time")
        self._asked += 1
        request_id = f"input-{self._asked}"
        given = self._replay.get(request_id)
        if given is not None:  # answered before this attempt (a slot-freeing wait): at once
            return given
        deadline_ns = time.time_ns() + int(timeout_seconds * 1e9) if timeout_seconds else 0
        request = InputRequest(request_id, prompt, schema_json, deadline_ns)
        if self._frees_slot:
            self._record.suspend(request)
            raise Suspended(request_id)
        answered: asyncio.Future[InputAnswer] = asyncio.get_running_loop().create_future()
        self._waiting = (request, answered)
        self.deadline.pause()
        self._record.ask(request)
        try:
            async with asyncio.timeout(timeout_seconds or None):
                return await asyncio.shield(answered)
        except TimeoutError:
            if answered.done() and not answered.cancelled():
                return answered.result()  # (answered as the wait ran out)
            raise InputTimeoutError(request.request_id, timeout_seconds or 0.0) from None
        finally:
            self._waiting = None
            if not answered.done():
                answered.cancel()
                self._record.answered(None)
            self.deadline.resume()

    def answer(self, request_id: str, value_json: str, answered_by: str) -> InputAnswer:
        """Give the waiting question its answer (checked against its schema first).

        Raises:
            TaskNotWaitingError: no question waits, or another one than `request_id` (empty: whichever waits).
            InvalidAnswerError: the value breaks the question's schema (every problem listed).
        """
        waiting = self._waiting
        if waiting is None or waiting[1].done():
            raise TaskNotWaitingError(self._record.task_id, f"waits for no input (it is {self._record.status.name})")
        request, answered = waiting
        if request_id and request_id != request.request_id:
            raise TaskNotWaitingError(
                self._record.task_id, f"waits for input {request.request_id!r}, not {request_id[:100]!r}"
            )
        from worker_abstraction import validation  # (jsonschema: loaded by the first answer, not by every worker)

        problems = validation.answer_problems(request.schema_json, value_json)
        if problems:
            raise InvalidAnswerError(problems)
        answer = InputAnswer(request.request_id, value_json, answered_by, time.time_ns())
        answered.set_result(answer)
        self._record.answered(answer)  # RUNNING again, with the answer, before the handler goes on
        return answer


class Suspended(BaseException):
    """Unwinds a handler whose question frees its slot (a BaseException: `except Exception` lets it through)."""


def _schema_text(schema: dict[str, Any] | str | None) -> str:
    if schema is None or schema == "":
        return ""
    if isinstance(schema, str):
        return schema
    try:
        return json.dumps(schema, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise InvalidParametersError([f"schema must be JSON: {error}"]) from None


def _question_problems(prompt: Any, schema_json: str, timeout_seconds: Any) -> list[str]:
    problems = []
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT:
        problems.append(f"prompt must be a text of at most {MAX_PROMPT:,} characters")
    if len(schema_json) > MAX_SCHEMA:
        problems.append(f"schema takes {len(schema_json):,} characters as JSON; at most {MAX_SCHEMA:,} are taken")
    elif schema_json:
        from worker_abstraction import schemas  # (jsonschema: loaded by the first question with a schema)

        problems += [f"schema: {problem}" for problem in schemas.schema_problems(schema_json)]
    if timeout_seconds is not None and (
        isinstance(timeout_seconds, bool)
        or not isinstance(timeout_seconds, int | float)
        or not 0 < timeout_seconds <= MAX_INPUT_WAIT_SECONDS
    ):
        problems.append(f"timeout must be None (no limit) or 0 < seconds <= {MAX_INPUT_WAIT_SECONDS:g}")
    return problems
