"""How tasks are written into stores: domain types to bytes and back, one place for every home.

The bytes are the contract's own messages (SubmitTaskRequest for a task as submitted, TaskRecord, TaskResult
for an update, DeadLetterEntry), so a store written by one version reads back in the next, and what a
store holds is what the wire carries. The homes speak domain types and call these; only this module (with
`_convert`) knows protobuf.
"""

from __future__ import annotations

import json
from typing import Any

from worker_abstraction import _convert
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.codec import EncodedParams
from worker_abstraction.options import RetryPolicy
from worker_abstraction.types import DeadLetter, TaskRecord, TaskSpec, TaskUpdate

# The `options` column of a stored task whose bytes are a SubmitTaskRequest (older rows hold a Task message
# and their options as JSON beside it: see `legacy_spec`).
SPEC_FORMAT = json.dumps({"format": 2})


def spec_bytes(spec: TaskSpec) -> bytes:
    """A task as submitted (id, owner and creation time included)."""
    return _convert.spec_to_pb(spec).SerializeToString()


def spec_of(data: bytes) -> TaskSpec:
    """Raises: InvalidParametersError / ValueError: the bytes are not a task."""
    return _convert.spec_from_pb(pb.SubmitTaskRequest.FromString(data))


def legacy_spec(task: bytes, options_json: str) -> TaskSpec:
    """A task stored by an older version: the Task message, and its options beside it as JSON.

    Raises: InvalidParametersError / ValueError: unreadable.
    """
    options: dict[str, Any] = json.loads(options_json or "{}")
    request = pb.SubmitTaskRequest(task=pb.Task.FromString(task), idempotency_key=options.get("idempotency_key") or "")
    request.task.worker_id = options.get("pinned", "")
    if options.get("timeout_seconds") is not None:
        request.exact_timeout_seconds = float(options["timeout_seconds"])
    retry = options.get("retry")
    if retry:
        policy = RetryPolicy(**{**retry, "non_retryable_errors": tuple(retry.get("non_retryable_errors", ()))})
        request.retry_policy.CopyFrom(_convert.retry_policy_to_pb(policy))
    return _convert.spec_from_pb(request)


def record_bytes(record: TaskRecord, *, encoded_params: EncodedParams | None = None) -> bytes:
    """A task's record (`encoded_params`: its arguments as the JSON texts they were submitted as, if at hand)."""
    return _convert.record_to_pb(record, encoded_params=encoded_params).SerializeToString()


def record_of(data: bytes) -> TaskRecord:
    return _convert.record_from_pb(pb.TaskRecord.FromString(data))


def dead_letter_bytes(letter: DeadLetter) -> bytes:
    return _convert.dead_letter_to_pb(letter).SerializeToString()


def dead_letter_of(data: bytes) -> DeadLetter:
    """Raises: InvalidParametersError / ValueError: unreadable."""
    return _convert.dead_letter_from_pb(pb.DeadLetterEntry.FromString(data))


def update_bytes(update: TaskUpdate, *, sequence: int) -> bytes:
    """An update as the update log keeps it, numbered as WatchTask numbers it."""
    return _convert.update_to_pb(update, sequence=sequence).SerializeToString()


def update_of(data: bytes) -> TaskUpdate:
    return _convert.update_from_pb(pb.TaskResult.FromString(data))
