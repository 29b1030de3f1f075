"""The one place where the package's own types meet the generated protobuf messages.

One module per family of messages; every conversion is reachable as `_convert.<name>`.
"""

from worker_abstraction._convert.errors import error_from_pb, error_to_pb, internal_error_to_pb
from worker_abstraction._convert.records import (
    attempt_from_pb,
    attempt_to_pb,
    dead_letter_from_pb,
    dead_letter_to_pb,
    record_from_pb,
    record_to_pb,
)
from worker_abstraction._convert.tasks import (
    failure_from_pb,
    failure_to_pb,
    parameters_from_pb,
    parameters_to_pb,
    retry_policy_from_pb,
    retry_policy_to_pb,
    spec_from_pb,
    spec_to_pb,
    task_result,
    task_to_pb,
    update_from_pb,
    update_to_pb,
)
from worker_abstraction._convert.workers import (
    capability_from_pb,
    capability_to_pb,
    from_timestamp,
    health_from_pb,
    health_to_pb,
    load_from_pb,
    load_to_pb,
    now_timestamp,
    timestamp,
    worker_from_pb,
    worker_to_pb,
)

__all__ = [
    "attempt_from_pb",
    "attempt_to_pb",
    "capability_from_pb",
    "capability_to_pb",
    "dead_letter_from_pb",
    "dead_letter_to_pb",
    "error_from_pb",
    "error_to_pb",
    "failure_from_pb",
    "failure_to_pb",
    "from_timestamp",
    "health_from_pb",
    "health_to_pb",
    "internal_error_to_pb",
    "load_from_pb",
    "load_to_pb",
    "now_timestamp",
    "parameters_from_pb",
    "parameters_to_pb",
    "record_from_pb",
    "record_to_pb",
    "retry_policy_from_pb",
    "retry_policy_to_pb",
    "spec_from_pb",
    "spec_to_pb",
    "task_result",
    "task_to_pb",
    "timestamp",
    "update_from_pb",
    "update_to_pb",
    "worker_from_pb",
    "worker_to_pb",
]
