"""A step's parameters made concrete when it starts: its references replaced by the outputs they name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker_abstraction.codec import short
from worker_abstraction.workflows.model import FailureField, Output


class UnresolvedInputError(Exception):
    """A reference that names nothing in the output it points into (a key or index that is not there)."""


def resolve(value: Any, outputs: Mapping[str, Any], failure: Mapping[str, str] | None = None) -> Any:
    """`value` with every `Output` replaced by what it names in `outputs` (step name -> output), and every
    `FailureField` by the failure's field.

    Raises:
        UnresolvedInputError: a reference names a step without an output, or a path that is not there.
    """
    if isinstance(value, Output):
        return follow(value, outputs)
    if isinstance(value, FailureField):
        return (failure or {}).get(value.name, "")
    if isinstance(value, Mapping):
        return {key: resolve(item, outputs, failure) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(item, outputs, failure) for item in value]
    return value


def follow(ref: Output, outputs: Mapping[str, Any]) -> Any:
    """What `ref` names in `outputs`.

    Raises:
        UnresolvedInputError: see `resolve`.
    """
    if ref.step not in outputs:
        raise UnresolvedInputError(f"step {ref.step!r} has no output")
    found = outputs[ref.step]
    for depth, key in enumerate(ref.path):
        where = "".join(f"[{k!r}]" for k in ref.path[: depth + 1])
        if isinstance(key, str) and isinstance(found, Mapping):
            if key not in found:
                raise UnresolvedInputError(f"the output of step {ref.step!r} has no {where}")
            found = found[key]
        elif isinstance(key, int) and isinstance(found, list):
            if not -len(found) <= key < len(found):
                raise UnresolvedInputError(f"the output of step {ref.step!r} has no {where} (it holds {len(found)})")
            found = found[key]
        else:
            kind = type(found).__name__ if found is not None else "null"
            raise UnresolvedInputError(
                f"the output of step {ref.step!r} at {where[: -len(f'[{key!r}]')] or 'its top'} is {kind} "
                f"{short(found)}, which has no {short(key)}"
            )
    return found
