"""What a worker checks of a task before it takes it, and how it recognises a delivery it has seen."""

from __future__ import annotations

from worker_abstraction._proto import worker_pb2 as pb


def fingerprint(task: pb.Task) -> int:
    """A small digest of what the task is: its capability, creation time and arguments.

    Two deliveries with the same id, attempt and fingerprint are the same delivery again (a retried call, an
    orchestrator that restarted before noting the first one); a different fingerprint under a known id is
    another task reusing the id. Kept instead of the Task itself, so a finished task costs a few bytes.
    """
    arguments = tuple((parameter.key, parameter.value_json) for parameter in task.parameters)
    return hash((task.capability_name, task.created_at.seconds, task.created_at.nanos, arguments))
