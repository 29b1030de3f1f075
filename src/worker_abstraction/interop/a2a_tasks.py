"""Our tasks as A2A tasks: states, status messages, artifacts, history and stream events.

An A2A task is one of our tasks, under the same id: its state is read from the orchestrator's records (so
it lives in the daemon's store), never copied. What maps to what:

    ours                                 A2A
    PENDING, APPROVAL_REQUIRED           submitted (approval: a status message says so)
    RUNNING                              working (progress: status message text, metadata.progress)
    INPUT_REQUIRED                       input-required (the prompt as text; metadata request_id, schema)
    COMPLETED                            completed, the output as artifact `result`
    FAILED (origin REJECTED)             failed (rejected); the failure in the status message
    CANCELED                             canceled
    a streamed chunk (`ctx.emit`)        TaskArtifactUpdateEvent of artifact `stream` (append after the
                                         first chunk, last_chunk when the handler said `last`)

A task's context id is the one its first message named (kept in the task's idempotency key, which the
store keeps: `a2a:` + JSON [context id, message id]), else the task's own id. The history is rebuilt from
the record: the call, then each question and its answer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.types import TaskStatus as A2AStatus

from worker_abstraction.exchanges import OutputChunk
from worker_abstraction.interop.a2a_messages import (
    CAPABILITY_KEY,
    PARAMS_KEY,
    REQUEST_ID_KEY,
    SCHEMA_KEY,
    data_part,
    part_of,
    text_part,
)
from worker_abstraction.types import FailureOrigin, TaskRecord, TaskStatus, TaskUpdate

RESULT = "result"  # the artifact holding a completed task's output
STREAM = "stream"  # the artifact the streamed chunks append to
KEY_PREFIX = "a2a:"

STATES: dict[TaskStatus, TaskState] = {
    TaskStatus.UNKNOWN: TaskState.TASK_STATE_SUBMITTED,
    TaskStatus.PENDING: TaskState.TASK_STATE_SUBMITTED,
    TaskStatus.APPROVAL_REQUIRED: TaskState.TASK_STATE_SUBMITTED,
    TaskStatus.RUNNING: TaskState.TASK_STATE_WORKING,
    TaskStatus.INPUT_REQUIRED: TaskState.TASK_STATE_INPUT_REQUIRED,
    TaskStatus.COMPLETED: TaskState.TASK_STATE_COMPLETED,
    TaskStatus.FAILED: TaskState.TASK_STATE_FAILED,
    TaskStatus.CANCELED: TaskState.TASK_STATE_CANCELED,
}
# The A2A states a list may filter by, as ours.
STATUSES_OF: dict[int, tuple[TaskStatus, ...]] = {
    TaskState.TASK_STATE_SUBMITTED: (TaskStatus.PENDING, TaskStatus.APPROVAL_REQUIRED),
    TaskState.TASK_STATE_WORKING: (TaskStatus.RUNNING,),
    TaskState.TASK_STATE_INPUT_REQUIRED: (TaskStatus.INPUT_REQUIRED,),
    TaskState.TASK_STATE_COMPLETED: (TaskStatus.COMPLETED,),
    TaskState.TASK_STATE_FAILED: (TaskStatus.FAILED,),
    TaskState.TASK_STATE_REJECTED: (TaskStatus.FAILED,),
    TaskState.TASK_STATE_CANCELED: (TaskStatus.CANCELED,),
}
# Where a blocking send returns: the task ended, or waits for someone.
SETTLED = frozenset(
    {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELED,
        TaskStatus.INPUT_REQUIRED,
        TaskStatus.APPROVAL_REQUIRED,
    }
)


def idempotency_key(context_id: str, message_id: str) -> str:
    """The key a task started by an A2A message is submitted under: the same message sent again (same
    context and message ids) is the same task, and the context id is kept with the task."""
    return KEY_PREFIX + json.dumps([context_id, message_id], separators=(",", ":"))


def context_of(record: TaskRecord) -> str:
    """The context id of a task: the one its first message named, else its own id."""
    key = record.idempotency_key
    if key.startswith(KEY_PREFIX):
        try:
            found = json.loads(key[len(KEY_PREFIX) :])
        except ValueError:
            found = None
        if isinstance(found, list) and found and isinstance(found[0], str) and found[0]:
            return found[0]
    return record.task_id


def state_of(update: TaskUpdate | None, status: TaskStatus) -> TaskState:
    failure = update.failure if update is not None else None
    if status is TaskStatus.FAILED and failure is not None and failure.origin is FailureOrigin.REJECTED:
        return TaskState.TASK_STATE_REJECTED
    return STATES.get(status, TaskState.TASK_STATE_SUBMITTED)


def _agent_message(task_id: str, context_id: str, parts: list[Part], metadata: dict[str, Any]) -> Message:
    message = Message(
        message_id=uuid.uuid4().hex, task_id=task_id, context_id=context_id, role=Role.ROLE_AGENT, parts=parts
    )
    if metadata:
        message.metadata.update(metadata)
    return message


def status_of(update: TaskUpdate | None, status: TaskStatus, task_id: str, context_id: str) -> A2AStatus:
    """The A2A status of a task whose latest update is `update` (None: none yet) and status is `status`."""
    found = A2AStatus(state=state_of(update, status))
    if update is not None and update.timestamp_ns:
        found.timestamp.FromNanoseconds(update.timestamp_ns)
    text, metadata = _said(update, status)
    if text or metadata:
        found.message.CopyFrom(_agent_message(task_id, context_id, [text_part(text)] if text else [], metadata))
    return found


def _said(update: TaskUpdate | None, status: TaskStatus) -> tuple[str, dict[str, Any]]:
    """What a status message says of an update: its text and metadata."""
    if status is TaskStatus.APPROVAL_REQUIRED:
        return "waiting for an operator's approval", {}
    if update is None:
        return "", {}
    if status is TaskStatus.INPUT_REQUIRED and update.input_request is not None:
        request = update.input_request
        asked: dict[str, Any] = {REQUEST_ID_KEY: request.request_id}
        if request.schema is not None:
            asked[SCHEMA_KEY] = request.schema
        return request.prompt or "input required", asked
    if status in (TaskStatus.FAILED, TaskStatus.CANCELED):
        failure = update.failure
        if failure is None:
            return update.error_message, {}
        detail = {"type": failure.type, "origin": failure.origin.name, "retryable": failure.retryable}
        return update.error_message or failure.text, {"failure": detail}
    if status is TaskStatus.RUNNING and (update.progress or update.progress_message):
        return update.progress_message, {"progress": update.progress}
    return "", {}


def result_artifact(output: Any) -> Artifact:
    return Artifact(artifact_id=RESULT, name=RESULT, parts=[part_of(output)])


def chunk_part(chunk: OutputChunk) -> Part:
    return text_part(chunk.text) if not chunk.data_json else data_part(json.loads(chunk.data_json))


def task_of(record: TaskRecord, updates: Sequence[TaskUpdate] = ()) -> Task:
    """A task as A2A shows it: status, artifacts (the chunks `updates` still hold, the output) and history."""
    context_id = context_of(record)
    task = Task(
        id=record.task_id,
        context_id=context_id,
        status=status_of(record.last_update, record.status, record.task_id, context_id),
        history=history_of(record, context_id),
    )
    chunks = [u.chunk for u in updates if u.chunk is not None]
    if chunks:
        task.artifacts.append(Artifact(artifact_id=STREAM, name=STREAM, parts=[chunk_part(c) for c in chunks]))
    if record.status is TaskStatus.COMPLETED and record.last_update is not None:
        task.artifacts.append(result_artifact(record.output))
    task.metadata.update(_task_metadata(record))
    return task


def _task_metadata(record: TaskRecord) -> dict[str, Any]:
    attempts = record.attempts
    return {
        CAPABILITY_KEY: record.capability,
        "worker_id": attempts[-1].worker_id if attempts else "",
        "attempts": len(attempts),
        "owner": record.owner,
    }


def history_of(record: TaskRecord, context_id: str) -> list[Message]:
    """The messages of a task: the call, then each question and its answer."""
    call = Message(
        message_id=f"{record.task_id}.call",
        task_id=record.task_id,
        context_id=context_id,
        role=Role.ROLE_USER,
        parts=[data_part({CAPABILITY_KEY: record.capability, PARAMS_KEY: record.params})],
    )
    messages = [call]
    for exchange in record.inputs:
        request = exchange.request
        asked = Message(
            message_id=f"{record.task_id}.ask.{request.request_id}",
            task_id=record.task_id,
            context_id=context_id,
            role=Role.ROLE_AGENT,
            parts=[text_part(request.prompt or "input required")],
        )
        asked.metadata.update({REQUEST_ID_KEY: request.request_id})
        messages.append(asked)
        if exchange.answer is not None:
            answer = Message(
                message_id=f"{record.task_id}.answer.{request.request_id}",
                task_id=record.task_id,
                context_id=context_id,
                role=Role.ROLE_USER,
                parts=[part_of(exchange.answer.value)],
            )
            answer.metadata.update({REQUEST_ID_KEY: request.request_id})
            messages.append(answer)
    return messages


def events_of(update: TaskUpdate, context_id: str) -> Iterable[TaskStatusUpdateEvent | TaskArtifactUpdateEvent]:
    """The A2A stream events one of our updates makes."""
    task_id = update.task_id
    chunk = update.chunk
    if chunk is not None:
        artifact = Artifact(artifact_id=STREAM, name=STREAM, parts=[chunk_part(chunk)])
        yield TaskArtifactUpdateEvent(
            task_id=task_id, context_id=context_id, artifact=artifact, append=chunk.index > 1, last_chunk=chunk.last
        )
        return
    if update.status is TaskStatus.COMPLETED:
        yield TaskArtifactUpdateEvent(
            task_id=task_id, context_id=context_id, artifact=result_artifact(update.output), last_chunk=True
        )
    event = TaskStatusUpdateEvent(
        task_id=task_id, context_id=context_id, status=status_of(update, update.status, task_id, context_id)
    )
    if update.worker_id:
        event.metadata.update({"worker_id": update.worker_id})
    yield event
