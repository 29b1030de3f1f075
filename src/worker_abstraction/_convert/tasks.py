"""Tasks, their updates and failures, retry policies and submissions: as the contract carries them."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

from worker_abstraction import _memory
from worker_abstraction._convert import bounds
from worker_abstraction._convert import exchanges as _exchanges
from worker_abstraction._convert.workers import from_timestamp, now_timestamp, set_timestamp
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.codec import LONE_SURROGATE, EncodedParams, decode_params, json_problem, payload_bytes
from worker_abstraction.errors import InvalidParametersError, InvalidTaskOptionsError
from worker_abstraction.exchanges import InputAnswer, InputRequest, OutputChunk
from worker_abstraction.observability import tracing
from worker_abstraction.options import MAX_ID_LENGTH, RetryPolicy, TaskOptions
from worker_abstraction.types import FailureOrigin, TaskFailure, TaskSpec, TaskStatus, TaskUpdate, traceback_tail
from worker_abstraction.versions import split_capability


def task_result(
    task_id: str,
    status: TaskStatus,
    *,
    sequence: int,
    worker_id: str,
    output_json: str = "",
    error_message: str = "",
    progress: float = 0.0,
    progress_message: str = "",
    attempt: int = 0,
    failure: TaskFailure | None = None,
    chunk: OutputChunk | None = None,
    input_request: InputRequest | None = None,
    input_answer: InputAnswer | None = None,
    metadata: dict[str, str] | None = None,
) -> pb.TaskResult:
    message = pb.TaskResult(
        attempt=attempt,
        task_id=task_id,
        status=int(status),  # type: ignore[arg-type]  # TaskStatus mirrors the proto enum value for value
        output_json=output_json,
        error_message=error_message,
        completed_at=now_timestamp(),
        sequence=sequence,
        progress=progress,
        progress_message=progress_message,
        worker_id=worker_id,
    )
    if failure is not None:
        fill_failure(message.failure, failure)
    if chunk is not None:
        _exchanges.fill_chunk(message.chunk, chunk)
    if input_request is not None:
        _exchanges.fill_request(message.input_request, input_request)
    if input_answer is not None:
        _exchanges.fill_answer(message.input_answer, input_answer)
    if metadata:
        message.metadata.update(metadata)
    return message


def failure_to_pb(failure: TaskFailure) -> pb.TaskFailure:
    message = pb.TaskFailure()
    fill_failure(message, failure)
    return message


def fill_failure(message: pb.TaskFailure, failure: TaskFailure) -> None:
    """`failure` into a message, in place (a field of another message needs no copy)."""
    message.type = failure.type
    message.message = failure.message
    message.retryable = failure.retryable
    message.origin = int(failure.origin)  # type: ignore[assignment]  # FailureOrigin mirrors the proto enum
    if failure.traceback:
        message.traceback = failure.traceback


_ORIGINS = {int(o): o for o in FailureOrigin}


def failure_from_pb(message: pb.TaskFailure) -> TaskFailure:
    return TaskFailure(
        type=message.type,
        message=message.message,
        origin=_ORIGINS.get(message.origin, FailureOrigin.UNSPECIFIED),
        retryable=message.retryable,
        traceback=traceback_tail(message.traceback) if message.traceback else "",  # (a worker's: bounded here)
    )


def _failure_of(message: pb.TaskResult, status: TaskStatus) -> TaskFailure | None:
    if message.HasField("failure"):  # (a retry's PENDING update carries the failure it retries, too)
        return failure_from_pb(message.failure)
    # A seed worker says only "Type: message" (or anything at all): the best reading of its text.
    if status is TaskStatus.FAILED:
        kind, colon, rest = message.error_message.partition(":")
        if colon and kind.isidentifier():
            return TaskFailure(kind, rest.strip(), FailureOrigin.HANDLER)
        return TaskFailure("Error", message.error_message, FailureOrigin.HANDLER)
    if status is TaskStatus.CANCELED:
        return TaskFailure("Canceled", message.error_message, FailureOrigin.CANCELED, retryable=False)
    return None


STATUSES = {int(s): s for s in TaskStatus}


def update_from_pb(message: pb.TaskResult) -> TaskUpdate:
    # A newer peer's status we do not know yet reads as UNKNOWN.
    status = STATUSES.get(message.status, TaskStatus.UNKNOWN)
    stamp = message.completed_at
    output, error_message = message.output_json, message.error_message
    failure = None
    if output:
        _memory.handled(len(output))
    # A lone surrogate can only come from a \u escape: only an output holding one is decoded here.
    if status is TaskStatus.COMPLETED and "\\u" in output and json_problem(output) == LONE_SURROGATE:
        # An output no reader can hold as text (a seed-built worker's json.dumps writes one): the attempt failed,
        # rather than every reader of its result failing later.
        failure = TaskFailure("InvalidOutput", f"the output {LONE_SURROGATE}", FailureOrigin.HANDLER, retryable=False)
        status, output, error_message = TaskStatus.FAILED, "", failure.text
    elif status is not TaskStatus.RUNNING:
        # Only a terminal update, or a retry's PENDING, carries a failure: RUNNING (the common one) never does.
        failure = _failure_of(message, status)
    update = TaskUpdate(
        task_id=message.task_id,
        status=status,
        sequence=message.sequence,
        output_json=output,
        error_message=error_message,
        progress=message.progress,
        progress_message=message.progress_message,
        worker_id=message.worker_id,
        attempt=message.attempt,
        timestamp_ns=stamp.seconds * 1_000_000_000 + stamp.nanos,
        metadata=dict(message.metadata) if message.metadata else {},
        failure=failure,
    )
    if status is TaskStatus.COMPLETED or status is TaskStatus.PENDING:
        return update  # (the common ones carry no chunk, question, answer or approval)
    return _with_exchanges(update, message)


def _with_exchanges(update: TaskUpdate, message: pb.TaskResult) -> TaskUpdate:
    """`update` with the chunk, question, answer or approval `message` carries, if any."""
    chunk = _exchanges.chunk_from_pb(message.chunk) if message.HasField("chunk") else None
    request = _exchanges.request_from_pb(message.input_request) if message.HasField("input_request") else None
    answer = _exchanges.answer_from_pb(message.input_answer) if message.HasField("input_answer") else None
    approval = _exchanges.approval_from_pb(message.approval) if message.HasField("approval") else None
    if chunk is None and request is None and answer is None and approval is None:
        return update
    return dataclasses.replace(update, chunk=chunk, input_request=request, input_answer=answer, approval=approval)


def update_to_pb(update: TaskUpdate, *, sequence: int | None = None) -> pb.TaskResult:
    message = pb.TaskResult()
    fill_update(message, update)
    if sequence is not None:
        message.sequence = sequence
    return message


def fill_update(message: pb.TaskResult, update: TaskUpdate) -> None:
    """`update` into a message, in place (a record's last update needs no copy)."""
    message.task_id = update.task_id
    message.status = int(update.status)  # type: ignore[assignment]  # TaskStatus mirrors the proto enum
    message.output_json = update.output_json
    message.error_message = update.error_message
    message.sequence = update.sequence
    message.progress = update.progress
    message.progress_message = update.progress_message
    message.worker_id = update.worker_id
    message.attempt = update.attempt
    if update.metadata:  # (an empty mapping costs as much to pass as a full one)
        message.metadata.update(update.metadata)
    if update.timestamp_ns:
        message.completed_at.seconds, message.completed_at.nanos = divmod(update.timestamp_ns, 1_000_000_000)
    if update.failure is not None:
        fill_failure(message.failure, update.failure)
    if update.chunk is not None:
        _exchanges.fill_chunk(message.chunk, update.chunk)
    if update.input_request is not None:
        _exchanges.fill_request(message.input_request, update.input_request)
    if update.input_answer is not None:
        _exchanges.fill_answer(message.input_answer, update.input_answer)
    if update.approval is not None:
        _exchanges.fill_approval(message.approval, update.approval)


def parameters_to_pb(encoded: EncodedParams) -> list[pb.TaskParameter]:
    return [pb.TaskParameter(key=key, value_json=text) for key, text in encoded]


def parameters_from_pb(parameters: Any) -> tuple[EncodedParams, dict[str, Any]]:
    """The arguments of a wire message, as JSON texts and decoded.

    Raises:
        InvalidParametersError: a repeated name or a value that is not JSON (every one listed).
    """
    encoded = tuple((p.key, p.value_json) for p in parameters)
    return encoded, decode_params(encoded)


def task_to_pb(
    spec: TaskSpec, *, attempt: int, worker_id: str, trace_context: tuple[tuple[str, str], ...] | None = None
) -> pb.Task:
    """The task as a worker receives it (one dispatch of it: `attempt`), continuing `trace_context` (default:
    the submission's)."""
    created = pb.Task()
    _fill_task(created, spec, attempt=attempt, worker_id=worker_id, trace_context=trace_context)
    return created


def _fill_task(
    created: pb.Task,
    spec: TaskSpec,
    *,
    attempt: int,
    worker_id: str,
    trace_context: tuple[tuple[str, str], ...] | None = None,
) -> None:
    """`task_to_pb` into a message, in place (a field of another message needs no copy)."""
    options = spec.options
    created.task_id = spec.task_id
    created.worker_id = worker_id
    created.capability_name = spec.capability
    # The contract counts whole seconds; round up so a short deadline never becomes "none".
    created.timeout_seconds = math.ceil(options.timeout_seconds)
    created.priority = options.priority
    created.fairness_key = options.fairness_key
    created.attempt = attempt
    if options.session_key:
        created.session_key = options.session_key
    add = created.parameters.add
    for key, text in spec.encoded_params:
        add(key=key, value_json=text)
    # Set only when there is something to set (most tasks have none): an empty one costs as much as a full one.
    if options.metadata:
        created.metadata.update(options.metadata)
    if options.required_tags:
        created.required_tags.extend(options.required_tags)
    if options.preferred_tags:
        created.preferred_tags.extend(options.preferred_tags)
    trace_context = spec.trace_context if trace_context is None else trace_context
    if trace_context:
        created.trace_context.update(trace_context)
    created.created_at.seconds, created.created_at.nanos = divmod(spec.created_at_ns, 1_000_000_000)


def retry_policy_to_pb(policy: RetryPolicy) -> pb.RetryPolicy:
    return pb.RetryPolicy(
        max_attempts=policy.max_attempts,
        initial_backoff_seconds=policy.initial_backoff_seconds,
        backoff_multiplier=policy.backoff_multiplier,
        max_backoff_seconds=policy.max_backoff_seconds,
        jitter=policy.jitter,
        retry_task_errors=policy.retry_task_errors,
        non_retryable_errors=list(policy.non_retryable_errors),
    )


def retry_policy_from_pb(message: pb.RetryPolicy) -> RetryPolicy:
    """Raises InvalidTaskOptionsError for a policy out of range (e.g. max_attempts < 1)."""
    return RetryPolicy(
        max_attempts=message.max_attempts,
        initial_backoff_seconds=message.initial_backoff_seconds,
        backoff_multiplier=message.backoff_multiplier,
        max_backoff_seconds=message.max_backoff_seconds,
        jitter=message.jitter,
        retry_task_errors=message.retry_task_errors,
        non_retryable_errors=tuple(message.non_retryable_errors),
    )


def spec_to_pb(spec: TaskSpec) -> pb.SubmitTaskRequest:
    """A submission (what the daemon's SubmitTask takes, and what a store keeps of a task)."""
    request = pb.SubmitTaskRequest()
    fill_submission(request, spec)
    return request


def fill_submission(request: pb.SubmitTaskRequest, spec: TaskSpec) -> None:
    """`spec_to_pb` into a message, in place (a field of another message needs no copy)."""
    options = spec.options
    _fill_task(request.task, spec, attempt=0, worker_id=options.worker_id)
    request.idempotency_key = options.idempotency_key
    request.exact_timeout_seconds = options.timeout_seconds
    request.owner = spec.owner
    if options.retry_policy is not None:
        request.retry_policy.CopyFrom(retry_policy_to_pb(options.retry_policy))
    if options.queue_timeout_seconds is not None:
        request.queue_timeout_seconds = options.queue_timeout_seconds
    if options.not_before is not None:
        set_timestamp(request.not_before, options.not_before)
    if options.delay_seconds:
        request.delay_seconds = options.delay_seconds
    if options.require_approval:
        request.require_approval = True
    if options.session_key:
        request.session_key = options.session_key
    if options.version:
        request.version = options.version
    if options.session_hard:
        request.session_hard = True
    if options.session_wait_seconds:
        request.session_wait_seconds = options.session_wait_seconds


def spec_from_pb(request: pb.SubmitTaskRequest) -> TaskSpec:
    """A submission read from the wire or a store; the task id and creation time may be empty (0).

    Raises:
        InvalidParametersError: the arguments or the options break the contract (every problem listed; an
            InvalidTaskOptionsError when only the options do).
    """
    task = request.task
    param_problems: list[str] = []
    # Numbers and instants out of range first (every field of the request, one table): nothing below then
    # computes with a value it cannot hold.
    option_problems = bounds.problems(request)
    encoded: EncodedParams = ()
    params: dict[str, Any] = {}
    try:
        encoded, params = parameters_from_pb(task.parameters)
    except InvalidParametersError as error:
        param_problems = error.problems
    _memory.handled(payload_bytes(encoded))
    retry = None
    if request.HasField("retry_policy") and not option_problems:
        try:
            retry = retry_policy_from_pb(request.retry_policy)
        except InvalidTaskOptionsError as error:
            option_problems += error.problems
    timeout = request.exact_timeout_seconds if request.HasField("exact_timeout_seconds") else task.timeout_seconds
    queue_timeout = request.queue_timeout_seconds if request.HasField("queue_timeout_seconds") else None
    plain = not (
        task.priority or task.fairness_key or task.required_tags or task.preferred_tags or task.worker_id
        or task.metadata or task.task_id or retry or request.idempotency_key or request.HasField("not_before")
        or request.delay_seconds or request.require_approval or request.session_key or request.version
        or request.session_hard or request.session_wait_seconds or "@" in task.capability_name
    )  # fmt: skip
    options: TaskOptions | None = None
    try:
        # Most submissions differ from the defaults in their timeouts at most: those options are made once.
        # (Numbers out of range are listed already, and not again by TaskOptions.)
        if plain and not option_problems:
            options = _plain_options(timeout, queue_timeout)
        elif not option_problems:
            options = TaskOptions(
                timeout_seconds=timeout,
                priority=task.priority,
                fairness_key=task.fairness_key,
                required_tags=tuple(task.required_tags),
                preferred_tags=tuple(task.preferred_tags),
                worker_id=task.worker_id,
                metadata=dict(task.metadata),
                task_id=task.task_id,
                retry_policy=retry,
                queue_timeout_seconds=queue_timeout,
                idempotency_key=request.idempotency_key,
                not_before=from_timestamp(request.not_before) if request.HasField("not_before") else None,
                delay_seconds=request.delay_seconds,
                require_approval=request.require_approval,
                session_key=request.session_key,
                version=_wanted_version(task.capability_name, request.version),
                session_hard=request.session_hard,
                session_wait_seconds=request.session_wait_seconds,
            )
    except InvalidTaskOptionsError as error:
        option_problems += error.problems
    if not task.capability_name.partition("@")[0] or len(task.capability_name) > MAX_ID_LENGTH:
        param_problems.append(f"task.capability_name must name a capability (1..{MAX_ID_LENGTH} characters)")
    stamp = task.created_at
    if param_problems:
        raise InvalidParametersError(param_problems + option_problems)
    if option_problems or options is None:
        raise InvalidTaskOptionsError(option_problems)
    return TaskSpec(
        task_id=task.task_id,
        capability=task.capability_name.partition("@")[0],  # ("name@range": the range is in the options)
        params=params,
        encoded_params=encoded,
        options=options,
        created_at_ns=stamp.seconds * 1_000_000_000 + stamp.nanos,
        owner=request.owner,
        # Only the W3C fields, bounded: a hostile carrier costs nothing downstream (nor in the store).
        trace_context=tuple(sorted(tracing.carrier(task.trace_context).items())) if task.trace_context else (),
    )


def _wanted_version(capability_name: str, version: str) -> str:
    """The version range a submission asks for: its `version`, else the range of a "name@range" name."""
    return version or split_capability(capability_name)[1]


@functools.lru_cache(maxsize=256)
def _plain_options(timeout_seconds: float, queue_timeout_seconds: float | None) -> TaskOptions:
    """Options that differ from the defaults in their timeouts only (frozen, so they can be shared)."""
    return TaskOptions(timeout_seconds=timeout_seconds, queue_timeout_seconds=queue_timeout_seconds)
