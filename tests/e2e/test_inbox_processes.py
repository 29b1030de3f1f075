"""A capability served by people, as a team runs it: `wa inbox serve review` (a human worker process), a daemon,
`wa submit review --detach`, then `wa inbox list / claim / answer` from the shell; the task completes with the
person's answer, and its record keeps who claimed and who answered. A second person cannot answer a task held
by the first, and a wrong answer is refused with its problems while the task keeps waiting."""

from __future__ import annotations

import json

import pytest
from processes import FAST_REGISTRY, FAST_WORKER, Start, wa

from worker_abstraction import RemoteOrchestrator, TaskStatus

pytestmark = pytest.mark.timeout(120)

WAIT_SECONDS = 30.0
SCHEMA = '{"type": "object", "properties": {"refund": {"type": "boolean"}}, "required": ["refund"]}'


async def test_people_claim_and_answer_tasks_through_the_inbox(start: Start) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start("inbox", "serve", "review", "--schema", SCHEMA, "--port", "0", "--registry", registry.address,
                "--max-concurrent", "2", *FAST_WORKER)  # fmt: skip
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address)
    at = ("--orchestrator", daemon.address)
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("review", timeout_seconds=WAIT_SECONDS)
        submitted = await wa("submit", "review", "-p", "prompt=Refund order 1234?", "-p", 'details={"amount": 120}',
                             "--detach", "--json", *at)  # fmt: skip
        assert submitted.code == 0, submitted.err
        task_id = next(json.loads(line)["task_id"] for line in submitted.out.splitlines() if "task_id" in line)
        handle = await remote.watch(task_id)
        request = await handle.input_requested(timeout_seconds=WAIT_SECONDS)
        assert request.prompt.startswith("Refund order 1234?") and '"amount": 120' in request.prompt

        listed = await wa("inbox", "list", *at)
        assert listed.code == 0 and task_id in listed.out and "free" in listed.out, listed.out
        claimed = await wa("inbox", "claim", task_id, "--as", "alice", *at)
        assert claimed.code == 0 and "held by alice" in claimed.out, claimed
        taken = await wa("inbox", "claim", task_id, "--as", "bob", *at)
        assert taken.code == 1 and "alice" in taken.err, taken
        not_his = await wa("inbox", "answer", task_id, "--value", '{"refund": true}', "--as", "bob", *at)
        assert not_his.code == 1 and "alice" in not_his.err, not_his
        wrong = await wa("inbox", "answer", task_id, "--value", '{"refund": "yes"}', "--as", "alice", *at)
        assert wrong.code == 2 and "boolean" in wrong.err, wrong
        assert (await remote.task(task_id)).status is TaskStatus.INPUT_REQUIRED
        answered = await wa("inbox", "answer", task_id, "--value", '{"refund": true}', "--as", "alice", *at)
        assert answered.code == 0, answered
        assert await handle.result(timeout_seconds=WAIT_SECONDS) == {"refund": True}
        record = await remote.task(task_id)
        assert record.claimed_by == "alice"
        [exchange] = record.inputs
        assert exchange.answer is not None and exchange.answer.answered_by == "alice"
        assert "nothing waits" in (await wa("inbox", "list", *at)).out
