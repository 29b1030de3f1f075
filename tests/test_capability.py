"""@capability: signatures become tool descriptions; bad ones fail at import; arguments are validated."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import Field

from worker_abstraction import (
    BaseWorker,
    CapabilitySpec,
    InvalidCapabilityError,
    InvalidParametersError,
    ParameterSpec,
    TaskContext,
    TaskFailedError,
    capability,
)
from worker_abstraction.testing import run_capability


class TextStats(BaseWorker):
    @capability
    async def word_count(self, text: str, ctx: TaskContext, min_len: int = 1) -> dict[str, int]:
        """Count words of at least `min_len` characters.

        Args:
            text: the text to count in.
            min_len: shortest word that counts.
        """
        ctx.report_progress(1.0)
        return {"words": sum(len(w) >= min_len for w in text.split())}

    @capability(name="summarise", description="Summary stats.", max_concurrent_tasks=2, required_tags=("gpu",))
    def stats(
        self,
        numbers: list[float],
        label: Annotated[str, "what the numbers are"] = "",
        options: Annotated[dict[str, Any] | None, Field(description="extra switches")] = None,
        flag: bool = False,
    ) -> dict[str, float]:
        return {"sum": sum(numbers), "count": len(numbers)}


def test_specs_are_derived_from_hints_defaults_and_docstrings() -> None:
    assert TextStats.capability_specs() == [
        CapabilitySpec(
            name="word_count",
            description="Count words of at least `min_len` characters.",
            parameters=(
                ParameterSpec("text", "string", "the text to count in.", True),
                ParameterSpec("min_len", "integer", "shortest word that counts.", False),
            ),
            output_schema='{"additionalProperties": {"type": "integer"}, "type": "object"}',  # (its return type)
        ),
        CapabilitySpec(
            name="summarise",
            description="Summary stats.",
            parameters=(
                ParameterSpec("numbers", "array", "", True, '{"items": {"type": "number"}, "type": "array"}'),
                ParameterSpec("label", "string", "what the numbers are", False),
                ParameterSpec(
                    "options",
                    "object",
                    "extra switches",
                    False,
                    '{"anyOf": [{"additionalProperties": true, "type": "object"}, {"type": "null"}], '
                    '"description": "extra switches"}',
                ),
                ParameterSpec("flag", "boolean", "", False),
            ),
            max_concurrent_tasks=2,
            required_tags=("gpu",),
            output_schema='{"additionalProperties": {"type": "number"}, "type": "object"}',
        ),
    ]


def test_arguments_are_checked_strictly_and_every_problem_is_listed() -> None:
    definition = TextStats.capabilities["summarise"]
    arguments, problems = definition.parse_arguments({"numbers": "[1, 2.5]", "flag": "true"})
    assert problems == [] and arguments == {"numbers": [1.0, 2.5], "flag": True}
    _, problems = definition.parse_arguments({"numbers": '"1,2"', "flag": "1", "bogus": "0"})
    assert len(problems) == 3
    assert any("unknown parameter 'bogus'" in p for p in problems)
    assert any("parameter 'numbers' expects array" in p for p in problems)
    assert any("parameter 'flag' expects boolean" in p for p in problems)


@pytest.mark.parametrize(
    "source",
    [
        "def f(self, x): ...",
        "def f(self, *args: int): ...",
        "def f(self, **kw: int): ...",
        "def f(self, x: int, /): ...",
        "def f(self): yield 1",
    ],
)
def test_signatures_that_cannot_be_described_fail_at_import_naming_the_method(source: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(InvalidCapabilityError) as raised:
        capability(namespace["f"])
    assert "f" in str(raised.value)


def test_two_methods_with_one_capability_name_fail_at_class_creation() -> None:
    with pytest.raises(InvalidCapabilityError):

        class Clash(BaseWorker):
            @capability(name="same")
            def a(self) -> None: ...

            @capability(name="same")
            def b(self) -> None: ...


def test_subclass_inherits_and_overrides_capabilities() -> None:
    class More(TextStats):
        @capability
        def word_count(self, text: str) -> int:  # type: ignore[override]
            return len(text)

    assert set(More.capabilities) == {"word_count", "summarise"}
    assert More.capabilities["word_count"].is_async is False


async def test_run_capability_runs_with_a_real_context() -> None:
    assert await run_capability(TextStats(), "word_count", text="a bb ccc", min_len=2) == {"words": 2}
    assert await run_capability(TextStats(), "summarise", numbers=[1, 2]) == {"sum": 3.0, "count": 2}
    with pytest.raises(InvalidParametersError):
        await run_capability(TextStats(), "word_count", text=5)


async def test_output_that_is_not_json_fails_the_task() -> None:
    class Bad(BaseWorker):
        @capability
        def leak(self) -> object:
            return object()

    with pytest.raises(TaskFailedError) as raised:
        await run_capability(Bad(), "leak")
    assert "JSON" in raised.value.error_message
