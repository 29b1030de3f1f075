"""TaskOptions checks every value it is given, whichever way it is built."""

from __future__ import annotations

from typing import Any

import pytest

from worker_abstraction import InvalidTaskOptionsError, RetryPolicy, TaskOptions
from worker_abstraction.options import MAX_ID_LENGTH, MAX_TIMEOUT_SECONDS

REFUSED: list[dict[str, Any]] = [
    {"timeout_seconds": float("nan")},
    {"timeout_seconds": float("inf")},
    {"timeout_seconds": -1},
    {"timeout_seconds": MAX_TIMEOUT_SECONDS + 1},
    {"timeout_seconds": True},
    {"timeout_seconds": "5"},
    {"queue_timeout_seconds": float("nan")},
    {"queue_timeout_seconds": -0.5},
    {"queue_timeout_seconds": MAX_TIMEOUT_SECONDS * 2},
    {"priority": True},
    {"priority": 2**31},
    {"priority": -(2**31) - 1},
    {"priority": 1.5},
    {"task_id": "x" * (MAX_ID_LENGTH + 1)},
    {"task_id": "line\nbreak"},
    {"worker_id": "\x00"},
    {"fairness_key": 7},
    {"idempotency_key": "tab\there"},
    {"required_tags": ["", "gpu"]},
    {"preferred_tags": [3]},
    {"metadata": {"k": 1}},
    {"metadata": {"": "v"}},
    {"retry_policy": "three times"},
]

ACCEPTED: list[dict[str, Any]] = [
    {},
    {"timeout_seconds": 0},
    {"timeout_seconds": MAX_TIMEOUT_SECONDS},
    {"timeout_seconds": 30, "queue_timeout_seconds": 0},
    {"priority": 2**31 - 1},
    {"priority": -(2**31)},
    {"task_id": "x" * MAX_ID_LENGTH, "worker_id": "w-1", "fairness_key": "tenant", "idempotency_key": "k"},
    {"required_tags": ["gpu"], "preferred_tags": ("fast",), "metadata": {"k": "v"}},
    {"retry_policy": RetryPolicy(max_attempts=2)},
]


@pytest.mark.parametrize("values", REFUSED, ids=lambda values: repr(values)[:40])
def test_a_value_out_of_bounds_is_refused_and_named(values: dict[str, Any]) -> None:
    with pytest.raises(InvalidTaskOptionsError) as refused:
        TaskOptions(**values)
    (name,) = values
    assert len(refused.value.problems) == 1
    assert name.split("_seconds")[0] in refused.value.problems[0]


@pytest.mark.parametrize("values", ACCEPTED, ids=lambda values: repr(values)[:40])
def test_values_in_bounds_are_kept(values: dict[str, Any]) -> None:
    options = TaskOptions(**values)
    assert options.problems() == []
    for name, value in values.items():
        kept = getattr(options, name)
        assert kept == (tuple(value) if isinstance(value, list) else value)
