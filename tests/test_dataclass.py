"""`quick_init`: the value types made on every task's path keep what @dataclass promised, made quicker."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field

import pytest

from worker_abstraction import TaskStatus, TaskUpdate
from worker_abstraction._dataclass import quick_init
from worker_abstraction.types import Attempt, TaskFailure, TaskRecord, TaskSpec


@quick_init
@dataclass(frozen=True, slots=True)
class _Quick:
    name: str
    count: int = 2
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Plain:
    name: str
    count: int = 2
    tags: list[str] = field(default_factory=list)


def test_the_same_parameters_defaults_and_factories_as_the_generated_init() -> None:
    assert list(inspect.signature(_Quick).parameters) == list(inspect.signature(_Plain).parameters)
    made = _Quick("a")
    assert (made.name, made.count, made.tags) == ("a", 2, [])
    assert _Quick("a").tags is not made.tags  # a fresh list each time, as the factory promises
    assert _Quick("b", 3, ["x"]) == _Quick(name="b", count=3, tags=["x"]) != _Quick("b")
    assert repr(_Quick("b", 3)) == "_Quick(name='b', count=3, tags=[])"
    with pytest.raises(TypeError):
        _Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Quick("a", colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Quick("a", 1, [], 4)  # type: ignore[call-arg]


def test_still_frozen_replaceable_and_picklable() -> None:
    made = _Quick("a", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.count = 5  # type: ignore[misc]
    assert dataclasses.replace(made, count=7) == _Quick("a", 7)
    assert pickle.loads(pickle.dumps(made)) == made


@pytest.mark.parametrize("kind", [TaskUpdate, Attempt, TaskRecord, TaskSpec, TaskFailure])
def test_the_per_task_types_use_it(kind: type) -> None:
    assert kind.__init__.__qualname__ == f"{kind.__qualname__}.__init__"
    assert "_set_" in kind.__init__.__code__.co_names[0]


def test_a_task_update_made_either_way_is_equal() -> None:
    update = TaskUpdate("t1", TaskStatus.RUNNING, 2, worker_id="w", attempt=1)
    assert update == dataclasses.replace(
        TaskUpdate("t1", TaskStatus.PENDING), status=TaskStatus.RUNNING, sequence=2, worker_id="w", attempt=1
    )
    assert update.metadata == {} and update.failure is None and not update.is_terminal


def test_refuses_what_it_cannot_do() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        name: str

    @dataclass(frozen=True, slots=True)
    class Checked:
        name: str

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class KeywordOnly:
        name: str = field(kw_only=True)

    for kind in (NoSlots, Checked, KeywordOnly):
        with pytest.raises(TypeError):
            quick_init(kind)
