"""What a worker checks of a task before it takes it, and how it recognises a delivery it has seen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker_abstraction._convert import bounds
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.capability import CapabilityDef
from worker_abstraction.codec import short
from worker_abstraction.options import MAX_ID_LENGTH


def check(task: pb.Task, capabilities: Mapping[str, CapabilityDef]) -> tuple[dict[str, Any], list[str]]:
    """The task's decoded arguments, and every way the task is invalid for this worker (empty: none).

    Only problems retrying cannot fix are listed (an unknown capability, bad arguments, a field out of range);
    whether the worker has room for the task is not checked here.
    """
    problems = _field_problems(task)
    definition = capabilities.get(task.capability_name)
    if definition is None:
        if task.capability_name:
            offered = ", ".join(sorted(capabilities)) or "none"
            problems.append(f"unknown capability {short(task.capability_name)} (this worker offers: {offered})")
        return {}, problems
    values = {}
    for parameter in task.parameters:
        if parameter.key in values:
            problems.append(f"parameter {parameter.key!r} given twice")
        values[parameter.key] = parameter.value_json
    arguments, argument_problems = definition.parse_arguments(values)
    return arguments, problems + argument_problems


def _field_problems(task: pb.Task) -> list[str]:
    # A value that passes here is safe for every clock, timer and datetime the worker derives from it: an
    # unbounded timeout once overflowed them and left the task RUNNING for ever.
    problems = []
    if not task.task_id:
        problems.append("task_id is empty; give every task an id")
    elif len(task.task_id) > MAX_ID_LENGTH:
        problems.append(
            f"task_id must be at most {MAX_ID_LENGTH} characters, got {len(task.task_id)}: {short(task.task_id)}"
        )
    elif not task.task_id.isprintable():
        problems.append(f"task_id must be printable text, got {short(task.task_id)}")
    if not task.capability_name:
        problems.append("capability_name is empty; name the capability to run")
    return problems + bounds.problems(task)  # (timeout, attempt, priority, created_at: the contract's table)


def fingerprint(task: pb.Task) -> int:
    """A small digest of what the task is: its capability, creation time and arguments.

    Two deliveries with the same id, attempt and fingerprint are the same delivery again (a retried call, an
    orchestrator that restarted before noting the first one); a different fingerprint under a known id is
    another task reusing the id. Kept instead of the Task itself, so a finished task costs a few bytes.
    """
    stamp = task.created_at
    if stamp.seconds or stamp.nanos:
        # Every submission gets its own creation time (to the nanosecond): with the capability it tells
        # deliveries apart without hashing the arguments of every task.
        return hash((task.capability_name, stamp.seconds, stamp.nanos))
    arguments = tuple((parameter.key, parameter.value_json) for parameter in task.parameters)
    return hash((task.capability_name, 0, 0, arguments))
