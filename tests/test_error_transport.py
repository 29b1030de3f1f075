"""How errors travel: status details and trailing fields stay short whatever the input was."""

from __future__ import annotations

import json

import grpc

from worker_abstraction import InvalidParametersError, InvalidWorkerInfoError
from worker_abstraction._rpc import describe, rebuild


def _unavailable(message: str) -> Exception:
    raise AssertionError(f"not a transport error: {message}")


def test_a_thousand_problems_travel_as_a_few_and_a_count() -> None:
    error = InvalidWorkerInfoError([f"problem {n}: " + "x" * 300 for n in range(1000)])
    code, details, kind, fields = describe(error)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and len(details) < 1000 and len(fields) <= 1000
    problems = json.loads(fields)["problems"]
    assert problems[0].startswith("problem 0") and problems[-1] == "... and 996 more"
    rebuilt = rebuild(code, details, kind, fields, _unavailable)  # type: ignore[arg-type]
    assert isinstance(rebuilt, InvalidWorkerInfoError) and rebuilt.problems == problems


def test_a_short_list_of_problems_travels_whole() -> None:
    error = InvalidParametersError(["a", "b"])
    *_, fields = describe(error)
    assert json.loads(fields) == {"problems": ["a", "b"]}
