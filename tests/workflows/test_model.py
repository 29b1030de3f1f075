"""The workflow model on its own: the file format, hostile documents, and every problem listed at once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker_abstraction.types import CapabilitySpec, ParameterSpec
from worker_abstraction.workflows import InvalidWorkflowError, Workflow, chain, group, signature
from worker_abstraction.workflows.inputs import UnresolvedInputError, resolve
from worker_abstraction.workflows.model import Output


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (None, "a workflow must be a JSON object"),
        ([], "a workflow must be a JSON object"),
        ({"steps": "x"}, '"steps" must be a list'),
        ({"steps": [7]}, "steps[0] must be an object"),
        ({"steps": [{"name": "a", "capability": "c", "bogus": 1}]}, "unknown fields 'bogus'"),
        ({"steps": [{"name": "a", "capability": "c", "params": {"v": {"$output": 3}}}]}, '"$output" names a step'),
        ({"steps": [{"name": "a", "capability": "c", "params": {"v": {"$failure": "x"}}}]}, "failure reference"),
        ({"steps": [{"name": "a", "capability": "c", "map": {"over": 1}}]}, "map must be"),
        ({"steps": [{"name": "a", "capability": "c", "retry": {"max_attempts": -1}}]}, "retry"),
        ({"steps": [{"name": "a", "capability": "c", "priority": "high"}]}, "priority"),
        ({"fail_fast": "yes", "steps": []}, "fail_fast must be true or false"),
    ],
)
def test_a_document_that_is_not_a_workflow_is_refused_with_what_is_wrong(document: Any, says: str) -> None:
    with pytest.raises(InvalidWorkflowError) as refused:
        Workflow.from_dict(document)
    assert says in str(refused.value)


def test_problems_are_listed_together() -> None:
    flow = Workflow("many")
    flow.step("bad name!", "c")
    flow.step("a", "c", {"v": Output("ghost")}, after=["nobody"])
    flow.step("a", "c")
    flow.map("m", "c", over=Output("a"), item="v", params={"v": 1}, concurrency=0)
    problems = flow.problems()
    assert any("step name 'bad name!'" in p for p in problems)
    assert any("does not exist: 'ghost'" in p for p in problems)
    assert any("does not exist: 'nobody'" in p for p in problems)
    assert any("two steps are named 'a'" in p for p in problems)
    assert any("item parameter 'v' is also one of its params" in p for p in problems)
    assert any("concurrency must be 1.." in p for p in problems)


def test_literal_parameters_are_checked_against_the_schema_and_references_by_name_only() -> None:
    declared = CapabilitySpec("add", parameters=(ParameterSpec("a", "integer"), ParameterSpec("b", "integer")))
    flow = Workflow("schema")
    first = flow.step("one", "add", {"a": 1, "b": 2})
    flow.step("two", "add", {"a": first, "b": "three", "c": first})
    problems = flow.problems({"add": declared})
    assert problems[0] == "step 'two': unknown parameter 'c' (capability 'add' takes: a, b)"
    assert problems[1].startswith("step 'two': parameter 'b': ") and "integer" in problems[1]
    assert len(problems) == 2


def test_references_resolve_paths_and_say_where_they_miss() -> None:
    outputs = {"s": {"rows": [{"id": 7}]}}
    assert resolve({"x": Output("s")["rows"][0]["id"], "y": [Output("s")["rows"]]}, outputs) == {
        "x": 7,
        "y": [[{"id": 7}]],
    }
    with pytest.raises(UnresolvedInputError, match=r"has no \['rows'\]\[3\]"):
        resolve(Output("s")["rows"][3], outputs)
    with pytest.raises(UnresolvedInputError, match="step 'other' has no output"):
        resolve(Output("other"), outputs)


def test_the_canvas_makes_a_dag_that_round_trips_through_json() -> None:
    made = chain(
        signature("a", name="first"),
        group(signature("b", takes="x"), signature("b", takes="x")),
        signature("c", takes="xs"),
    ).workflow("canvas")
    again = Workflow.from_json(json.dumps(made.to_dict()))
    assert again.to_dict() == made.to_dict()
    assert [(s.name, s.parents) for s in again.steps] == [
        ("first", ()),
        ("b-1", ("first",)),
        ("b-2", ("first",)),
        ("c-1", ("b-1", "b-2")),
    ]
    assert again.problems() == []
