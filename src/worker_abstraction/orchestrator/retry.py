"""Retry policy: which failures are tried again, how often, and how long to wait in between."""

from __future__ import annotations

import random
from dataclasses import dataclass

from worker_abstraction._proto import worker_pb2 as pb


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed attempt is tried again.

    Infrastructure failures (the worker died, became unreachable, or lost the task) are always retried,
    up to `max_attempts`: execution is at-least-once. Failures the task itself raised are retried only
    with `retry_task_errors`, and never for the error types in `non_retryable_errors` (the name before
    the colon in the worker's message, e.g. "ValueError"). A retry prefers a worker that has not failed
    the task yet.

    Args:
        max_attempts: attempts in all, the first included (1: never retry).
        initial_backoff_seconds: wait before the second attempt.
        backoff_multiplier: each further wait grows by this factor...
        max_backoff_seconds: ...up to this.
        jitter: each wait is spread by up to this fraction either way, so retries do not arrive in step.
        retry_task_errors: also retry failures the task's handler raised.
        non_retryable_errors: error types never retried.
    """

    max_attempts: int = 3
    initial_backoff_seconds: float = 0.2
    backoff_multiplier: float = 2.0
    max_backoff_seconds: float = 30.0
    jitter: float = 0.2
    retry_task_errors: bool = False
    non_retryable_errors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def allows(self, attempt: int, *, error_message: str, infrastructure: bool) -> bool:
        """Whether attempt number `attempt`, which failed so, may be followed by another."""
        if attempt >= self.max_attempts:
            return False
        if infrastructure:
            return True
        kind = error_message.split(":", 1)[0].strip()
        return self.retry_task_errors and kind not in self.non_retryable_errors

    def backoff_seconds(self, attempt: int) -> float:
        """How long to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.max_backoff_seconds, self.initial_backoff_seconds * self.backoff_multiplier ** (attempt - 1))
        return max(0.0, base * random.uniform(1 - self.jitter, 1 + self.jitter))


def policy_to_pb(policy: RetryPolicy) -> pb.RetryPolicy:
    return pb.RetryPolicy(
        max_attempts=policy.max_attempts,
        initial_backoff_seconds=policy.initial_backoff_seconds,
        backoff_multiplier=policy.backoff_multiplier,
        max_backoff_seconds=policy.max_backoff_seconds,
        jitter=policy.jitter,
        retry_task_errors=policy.retry_task_errors,
        non_retryable_errors=list(policy.non_retryable_errors),
    )


def policy_from_pb(message: pb.RetryPolicy) -> RetryPolicy:
    """Raises ValueError for a policy that makes no sense (e.g. max_attempts < 1)."""
    return RetryPolicy(
        max_attempts=message.max_attempts,
        initial_backoff_seconds=message.initial_backoff_seconds,
        backoff_multiplier=message.backoff_multiplier,
        max_backoff_seconds=message.max_backoff_seconds,
        jitter=message.jitter,
        retry_task_errors=message.retry_task_errors,
        non_retryable_errors=tuple(message.non_retryable_errors),
    )
