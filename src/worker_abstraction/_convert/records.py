"""What an orchestrator tells of tasks: attempts, records and dead letters, as the contract carries them."""

from __future__ import annotations

from datetime import UTC, datetime

from worker_abstraction._convert import exchanges as _exchanges
from worker_abstraction._convert.tasks import (
    STATUSES,
    fill_update,
    parameters_from_pb,
    parameters_to_pb,
    spec_from_pb,
    spec_to_pb,
    update_from_pb,
)
from worker_abstraction._convert.workers import from_timestamp, set_timestamp
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.codec import EncodedParams, encode_params
from worker_abstraction.options import TaskOptions
from worker_abstraction.types import Attempt, DeadLetter, TaskRecord, TaskSpec, TaskStatus


def attempt_to_pb(attempt: Attempt) -> pb.AttemptRecord:
    message = pb.AttemptRecord()
    _fill_attempt(message, attempt)
    return message


def _fill_attempt(message: pb.AttemptRecord, attempt: Attempt) -> None:
    # In place: a record's attempts are added to it, not made and copied.
    message.number = attempt.number
    message.worker_id = attempt.worker_id
    message.status = int(attempt.status)  # type: ignore[assignment]  # TaskStatus mirrors the proto enum
    message.error_message = attempt.error_message
    set_timestamp(message.started_at, attempt.started_at)
    if attempt.ended_at is not None:
        set_timestamp(message.ended_at, attempt.ended_at)


def attempt_from_pb(message: pb.AttemptRecord) -> Attempt:
    return Attempt(
        number=message.number,
        worker_id=message.worker_id,
        started_at=from_timestamp(message.started_at) or datetime.now(UTC),
        ended_at=from_timestamp(message.ended_at),
        status=STATUSES.get(message.status, TaskStatus.UNKNOWN),
        error_message=message.error_message,
    )


def dead_letter_to_pb(letter: DeadLetter) -> pb.DeadLetterEntry:
    encoded = encode_params(letter.params)
    spec = TaskSpec(
        letter.options.task_id, letter.capability, letter.params, encoded, letter.options, 0, owner=letter.owner
    )
    return pb.DeadLetterEntry(
        task_id=letter.task_id,
        capability=letter.capability,
        parameters=parameters_to_pb(encoded),
        attempts=[attempt_to_pb(a) for a in letter.attempts],
        error_message=letter.error_message,
        submission=spec_to_pb(spec),
    )


def dead_letter_from_pb(message: pb.DeadLetterEntry) -> DeadLetter:
    """Raises InvalidParametersError for an entry whose arguments or options are broken."""
    options = spec_from_pb(message.submission).options if message.HasField("submission") else TaskOptions()
    return DeadLetter(
        task_id=message.task_id,
        capability=message.capability,
        params=parameters_from_pb(message.parameters)[1],
        attempts=tuple(attempt_from_pb(a) for a in message.attempts),
        error_message=message.error_message,
        options=options,
        owner=message.submission.owner,
    )


def record_to_pb(record: TaskRecord, *, encoded_params: EncodedParams | None = None) -> pb.TaskRecord:
    """`encoded_params`: the record's arguments as their JSON texts, when the caller has them already."""
    message = pb.TaskRecord(
        task_id=record.task_id,
        capability=record.capability,
        status=int(record.status),  # type: ignore[arg-type]  # TaskStatus mirrors the proto enum
        parameters=parameters_to_pb(encode_params(record.params) if encoded_params is None else encoded_params),
        dead_lettered=record.dead_lettered,
        cancel_reason=record.cancel_reason,
        idempotency_key=record.idempotency_key,
        owner=record.owner,
    )
    for attempt in record.attempts:
        _fill_attempt(message.attempts.add(), attempt)
    if record.last_update is not None:
        fill_update(message.last_update, record.last_update)
    if record.submitted_at is not None:
        set_timestamp(message.submitted_at, record.submitted_at)
    if record.not_before is not None:
        set_timestamp(message.not_before, record.not_before)
    if record.expires_at is not None:
        set_timestamp(message.expires_at, record.expires_at)
    for exchange in record.inputs:
        _exchanges.fill_exchange(message.inputs.add(), exchange)
    if record.approval is not None:
        _exchanges.fill_approval(message.approval, record.approval)
    message.approval_required = record.approval_required
    message.claimed_by = record.claimed_by
    return message


def record_from_pb(message: pb.TaskRecord) -> TaskRecord:
    return TaskRecord(
        task_id=message.task_id,
        capability=message.capability,
        status=STATUSES.get(message.status, TaskStatus.UNKNOWN),
        params=parameters_from_pb(message.parameters)[1],
        attempts=tuple(attempt_from_pb(a) for a in message.attempts),
        last_update=update_from_pb(message.last_update) if message.HasField("last_update") else None,
        submitted_at=from_timestamp(message.submitted_at),
        dead_lettered=message.dead_lettered,
        cancel_reason=message.cancel_reason,
        idempotency_key=message.idempotency_key,
        owner=message.owner,
        not_before=from_timestamp(message.not_before),
        expires_at=from_timestamp(message.expires_at),
        inputs=tuple(_exchanges.exchange_from_pb(e) for e in message.inputs),
        approval=_exchanges.approval_from_pb(message.approval) if message.HasField("approval") else None,
        approval_required=message.approval_required,
        claimed_by=message.claimed_by,
    )
