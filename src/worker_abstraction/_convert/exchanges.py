"""Streamed chunks, questions, answers and approvals, as the contract carries them."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.exchanges import Approval, InputAnswer, InputExchange, InputRequest, OutputChunk


def _set_ns(field: Timestamp, nanoseconds: int) -> None:
    """Set `field` to a time in ns since the epoch; 0 (no time) leaves it unset."""
    if nanoseconds:
        field.seconds, field.nanos = divmod(nanoseconds, 1_000_000_000)


def _ns(field: Timestamp) -> int:
    return field.seconds * 1_000_000_000 + field.nanos


def fill_chunk(message: pb.OutputChunk, chunk: OutputChunk) -> None:
    message.index = chunk.index
    if chunk.text:
        message.text = chunk.text
    if chunk.data_json:
        message.data_json = chunk.data_json
    if chunk.last:
        message.last = True


def chunk_from_pb(message: pb.OutputChunk) -> OutputChunk:
    return OutputChunk(message.index, message.text, message.data_json, message.last)


def fill_request(message: pb.InputRequest, request: InputRequest) -> None:
    message.request_id = request.request_id
    message.prompt = request.prompt
    message.schema_json = request.schema_json
    _set_ns(message.deadline, request.deadline_ns)


def request_from_pb(message: pb.InputRequest) -> InputRequest:
    return InputRequest(message.request_id, message.prompt, message.schema_json, _ns(message.deadline))


def fill_answer(message: pb.InputAnswer, answer: InputAnswer) -> None:
    message.request_id = answer.request_id
    message.value_json = answer.value_json
    message.answered_by = answer.answered_by
    _set_ns(message.answered_at, answer.answered_at_ns)


def answer_from_pb(message: pb.InputAnswer) -> InputAnswer:
    return InputAnswer(message.request_id, message.value_json, message.answered_by, _ns(message.answered_at))


def fill_approval(message: pb.Approval, approval: Approval) -> None:
    message.approved = approval.approved
    message.decided_by = approval.decided_by
    message.reason = approval.reason
    _set_ns(message.decided_at, approval.decided_at_ns)


def approval_from_pb(message: pb.Approval) -> Approval:
    return Approval(message.approved, message.decided_by, message.reason, _ns(message.decided_at))


def fill_exchange(message: pb.InputExchange, exchange: InputExchange) -> None:
    fill_request(message.request, exchange.request)
    if exchange.answer is not None:
        fill_answer(message.answer, exchange.answer)
    _set_ns(message.asked_at, exchange.asked_at_ns)
    message.attempt = exchange.attempt


def exchange_from_pb(message: pb.InputExchange) -> InputExchange:
    return InputExchange(
        request_from_pb(message.request),
        answer_from_pb(message.answer) if message.HasField("answer") else None,
        _ns(message.asked_at),
        message.attempt,
    )
