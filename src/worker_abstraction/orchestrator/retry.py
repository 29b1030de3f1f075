"""Retry decisions: which failed attempts are tried again (the policy itself is `options.RetryPolicy`)."""

from __future__ import annotations

from worker_abstraction.options import RetryPolicy

__all__ = ["RetryPolicy", "allows"]


def allows(policy: RetryPolicy, attempt: int, *, error_message: str, infrastructure: bool) -> bool:
    """Whether attempt number `attempt`, which failed so, may be followed by another."""
    if attempt >= policy.max_attempts:
        return False
    if infrastructure:
        return True
    kind = error_message.split(":", 1)[0].strip()
    return policy.retry_task_errors and kind not in policy.non_retryable_errors
