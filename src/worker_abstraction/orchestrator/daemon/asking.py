"""The daemon's human-in-the-loop calls: ProvideInput (the task's owner, or an operator) and ApproveTask /
DenyTask (operators only, by the role table in `auth`). Who answered or decided is the caller's principal."""

from __future__ import annotations

from worker_abstraction import _convert, auth
from worker_abstraction._convert import bounds
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.errors import InvalidRequestError
from worker_abstraction.exchanges import MAX_REQUEST_ID
from worker_abstraction.orchestrator.core.engine import Engine
from worker_abstraction.orchestrator.daemon import callers, workflows
from worker_abstraction.validation import MAX_ANSWER

MAX_REASON = 4096  # characters of an approval's or a denial's reason
MAX_CLAIMANT = 128  # characters of a claimant's name


async def provide_input(engine: Engine, request: pb.ProvideInputRequest) -> pb.ProvideInputResponse:
    """Answer a task's question (`core.asking`); the task must be the caller's to see."""
    workflows.check_id(request.task_id, "task_id")
    problems = bounds.problems(request)
    if len(request.request_id) > MAX_REQUEST_ID:
        problems.append(f"request_id may be at most {MAX_REQUEST_ID} characters, got {len(request.request_id):,}")
    if len(request.value_json) > MAX_ANSWER:
        problems.append(f"value_json may be at most {MAX_ANSWER:,} characters, got {len(request.value_json):,}")
    if not request.value_json:
        problems.append("value_json is empty: give the answer as JSON (a text is quoted: '\"yes\"')")
    if problems:
        raise InvalidRequestError(problems)
    await callers.check_visible(engine, request.task_id)
    answer = await engine.provide_input(
        request.task_id, request.value_json, request_id=request.request_id, answered_by=_who(request.answered_by)
    )
    return pb.ProvideInputResponse(task_id=request.task_id, request_id=answer.request_id, status=pb.TASK_STATUS_RUNNING)


async def claim(engine: Engine, request: pb.ClaimRequest) -> pb.TaskRecord:
    """Take (or give back) a task's pending question; an operator may release anyone's."""
    workflows.check_id(request.task_id, "task_id")
    if len(request.claimant) > MAX_CLAIMANT:
        raise InvalidRequestError([f"claimant may be at most {MAX_CLAIMANT} characters, got {len(request.claimant):,}"])
    await callers.check_visible(engine, request.task_id)
    operator = auth.restricted_to() is None and bool(auth.current_owner())
    record = engine.claim(request.task_id, _who(request.claimant), release=request.release, force=operator)
    return _convert.record_to_pb(record)


def _who(said: str) -> str:
    """Who answers or claims: the caller's principal when credentials are on; what it says when they are off."""
    return auth.current_owner() or said[:MAX_CLAIMANT]


async def decide(engine: Engine, request: pb.ApprovalRequest, *, approved: bool) -> pb.ApprovalResponse:
    """Approve or deny a task waiting for approval (`core.approval`)."""
    workflows.check_id(request.task_id, "task_id")
    if len(request.reason) > MAX_REASON:
        raise InvalidRequestError([f"reason may be at most {MAX_REASON} characters, got {len(request.reason):,}"])
    await callers.check_visible(engine, request.task_id)
    status = await engine.decide(request.task_id, approved, decided_by=auth.current_owner(), reason=request.reason)
    return pb.ApprovalResponse(task_id=request.task_id, status=int(status))  # type: ignore[arg-type]
