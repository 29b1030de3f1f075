"""A quicker `__init__` for the frozen, slotted dataclasses made once or more per task.

A frozen dataclass's generated `__init__` sets each field through `object.__setattr__` (the class's own
`__setattr__` refuses), about a quarter of a microsecond a field: a 12-field `TaskUpdate` took ~3 µs to make,
five times an unfrozen one, and every process on a task's path makes several per task. Setting each slot
through its member descriptor does the same at a third of the cost. `quick_init` gives a class such an
`__init__`, with the generated one's parameters, defaults and default factories; everything else about the
class (frozen, equality, repr, replace, pickling) is what `@dataclass` made.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


class _Factory:
    """The default of a parameter whose field has a default factory (shown as `<factory>`, as dataclasses do)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def quick_init(cls: type[T]) -> type[T]:
    """Replace the `__init__` of a frozen, slotted dataclass by one that sets its slots directly.

    Raises:
        TypeError: `cls` is not such a dataclass, or has what this `__init__` does not do (`__post_init__`,
            init-only or keyword-only fields, fields left out of `__init__`).
    """
    parameters = getattr(cls, "__dataclass_params__", None)
    if parameters is None or not parameters.frozen or "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__} is not a frozen dataclass with slots")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__, which quick_init does not call")
    names: dict[str, Any] = {"_FACTORY": _FACTORY}
    signature: list[str] = []
    body: list[str] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not field.init or field.kw_only:
            raise TypeError(f"{cls.__name__}.{field.name}: quick_init takes positional init fields only")
        name = field.name
        names[f"_set_{name}"] = vars(cls)[name].__set__  # the slot's member descriptor
        if field.default is not dataclasses.MISSING:
            names[f"_default_{name}"] = field.default
            signature.append(f"{name}=_default_{name}")
        elif field.default_factory is not dataclasses.MISSING:
            names[f"_factory_{name}"] = field.default_factory
            signature.append(f"{name}=_FACTORY")
            body.append(f"    if {name} is _FACTORY:\n        {name} = _factory_{name}()\n")
        else:
            signature.append(name)
        body.append(f"    _set_{name}(self, {name})\n")
    source = f"def __init__(self, {', '.join(signature)}):\n" + "".join(body or ["    pass\n"])
    exec(source, names)  # as @dataclass makes its own __init__
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
