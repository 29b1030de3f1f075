"""One script, written against the orchestrator contract, runs unchanged on the embedded engine and the daemon.

The script exercises the whole contract, errors included, and both backends must tell the same story:
same outputs, same statuses, same error classes with the same fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import Gates
from worker_abstraction import (
    AsyncOrchestrator,
    AsyncOrchestratorAPI,
    InvalidParametersError,
    InvalidTaskOptionsError,
    NoWorkerError,
    RegistryServer,
    RemoteOrchestrator,
    RetryPolicy,
    TaskCanceledError,
    TaskExistsError,
    TaskFailedError,
    TaskNotFoundError,
    TaskOptions,
    TaskStatus,
    WorkerState,
)
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

pytestmark = pytest.mark.timeout(60)


@dataclass
class Story:
    """What a script saw, in a form both backends can be compared on."""

    lines: list[Any] = field(default_factory=list)

    def __call__(self, *seen: Any) -> None:
        self.lines.append(seen)


async def script(orch: AsyncOrchestratorAPI, gates: Gates, tag: str) -> Story:
    """A user's script: nothing in it knows which backend runs it."""
    story = Story()
    workers = await orch.wait_for_workers("echo", timeout_seconds=5)
    story("workers", len(workers), sorted(w.name for w in await orch.workers()))
    story("health", [(h.state, h.circuit) for h in await orch.worker_health()])

    handle = await orch.execute_task("echo", {"text": "hi", "times": 2}, timeout_seconds=30, priority=3)
    story("statuses", [u.status for u in [u async for u in handle]], await handle.result())

    options = TaskOptions(retry_policy=RetryPolicy(max_attempts=1), metadata={"who": "script"})
    failed = await orch.execute_task("explode", {"message": "no"}, options=options)
    with pytest.raises(TaskFailedError) as boom:
        await failed.result(timeout_seconds=5)
    story("failed", boom.value.error_message, boom.value.error_type)

    for bad_call in (
        lambda: orch.execute_task("echo", {"text": 3, "bogus": 1}),
        lambda: orch.execute_task("echo", {"text": "x"}, timeout_seconds=-1),
        lambda: orch.execute_task("nobody-offers-this", {}),
        lambda: orch.execute_task("echo", {"text": "x"}, task_id=handle.task_id),
        lambda: orch.task("no-such-task"),
    ):
        try:
            await bad_call()
        except (InvalidParametersError, NoWorkerError, TaskExistsError, TaskNotFoundError) as error:
            fields = {k: ("<the first task>" if v == handle.task_id else v) for k, v in error.fields().items()}
            story("refused", type(error).__name__, fields, isinstance(error, InvalidTaskOptionsError))

    waiting = await orch.execute_task("cooperative", {}, task_id=f"{tag}-held")
    assert await orch.cancel(waiting.task_id, "changed my mind")
    with pytest.raises(TaskCanceledError) as canceled:
        await waiting.result(timeout_seconds=5)
    story("canceled", canceled.value.reason, (await orch.task(waiting.task_id)).status)
    story("cancel again", await orch.cancel(waiting.task_id))

    again = await orch.watch(handle.task_id)
    story("watched", [u.status for u in [u async for u in again]][-1], await again.result())
    record = await orch.task(handle.task_id)
    story("record", record.status, record.output, [(a.number, a.status) for a in record.attempts])
    page, more = await orch.task_page(status=TaskStatus.COMPLETED, limit=1)
    story("page", [r.task_id == handle.task_id for r in page], more)
    story("tasks", sorted(r.status.name for r in await orch.tasks()))

    outputs = [(await h.result())["text"] async for h in orch.execute_many("echo", ({"text": c} for c in "abc"))]
    story("many", sorted(outputs))
    story("queue", await orch.queue_depths())
    story("dead letters", await orch.dead_letters(), await orch.purge_dead_letters())
    return story


async def test_a_script_runs_unchanged_on_the_embedded_engine_and_on_the_daemon(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates
) -> None:
    await start_worker()
    async with AsyncOrchestrator(registry.address) as embedded:
        here = await script(embedded, gates, "embedded")
    async with OrchestratorServer(registry.address, port=0) as server, RemoteOrchestrator(server.address) as remote:
        there = await script(remote, gates, "daemon")
    assert here.lines == there.lines
    assert ("health", [(WorkerState.ACTIVE, "closed")]) in here.lines
    refused = [line for line in here.lines if line[0] == "refused"]
    assert [kind for _, kind, _, _ in refused] == [
        "InvalidParametersError",
        "InvalidTaskOptionsError",
        "NoWorkerError",
        "TaskExistsError",
        "TaskNotFoundError",
    ]
    assert len(refused[0][2]["problems"]) == 2  # every problem listed, across the daemon too
