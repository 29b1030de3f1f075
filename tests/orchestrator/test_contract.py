"""One script, written against the orchestrator contract, runs unchanged on the embedded engine and the daemon,
over every home a task can live in: memory, SQLite and NATS.

The script exercises the whole contract, errors, idempotency keys and dead letters included, and every
backend must tell the same story: same outputs, same statuses, same error classes with the same fields.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import nats_server as nats_server_process
from tests.conftest import Gates, eventually
from tests.hitl.workers import AskingWorker
from worker_abstraction import (
    AsyncOrchestrator,
    AsyncOrchestratorAPI,
    InvalidAnswerError,
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
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.stores.jetstream import NatsOptions
from worker_abstraction.stores.sqlite import SqliteTaskStore

pytestmark = pytest.mark.timeout(180)
PARTITIONS = 4  # the NATS home's (one daemon holds them all: few is enough)


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

    key = f"{tag}-once"
    first = await orch.execute_task("echo", {"text": "once"}, idempotency_key=key)
    second = await orch.execute_task("echo", {"text": "twice?"}, idempotency_key=key)
    story("idempotent", second.task_id == first.task_id, await second.result(), await first.result())
    later = await orch.execute_task("echo", {"text": "again"}, idempotency_key=key)  # (the first has finished)
    story("idempotent after its end", later.task_id == first.task_id, await later.result())

    retried = TaskOptions(
        retry_policy=RetryPolicy(max_attempts=2, initial_backoff_seconds=0.01, retry_task_errors=True)
    )
    doomed = await orch.execute_task("explode", {"message": "again and again"}, options=retried)
    with pytest.raises(TaskFailedError):
        await doomed.result(timeout_seconds=10)
    letters = await orch.dead_letters()
    story("dead letters", [(d.task_id == doomed.task_id, d.capability, len(d.attempts)) for d in letters])
    story("dead-lettered record", (await orch.task(doomed.task_id)).dead_lettered)
    requeued = await orch.requeue_dead_letter(doomed.task_id)
    story("requeued", requeued.task_id != doomed.task_id, await orch.dead_letters())
    with pytest.raises(TaskFailedError):
        await requeued.result(timeout_seconds=10)
    story("purged", await orch.purge_dead_letters(), await orch.dead_letters())
    story("queue", await orch.queue_depths())

    # Agents at work: a question answered (a wrong answer first), a gate approved and one denied, chunks.
    asking = await orch.execute_task("review", {"item": tag})
    question = await asking.input_requested(timeout_seconds=10)
    with pytest.raises(InvalidAnswerError) as wrong:
        await asking.provide_input({"approved": "maybe"})
    story("wrong answer", wrong.value.problems, (await orch.task(asking.task_id)).status)
    await orch.provide_input(asking.task_id, {"approved": True}, request_id=question.request_id)
    outcome = await asking.result(timeout_seconds=10)
    story("answered", question.prompt.replace(tag, "<tag>"), question.schema, outcome["answer"])
    exchanges = (await orch.task(asking.task_id)).inputs
    story("exchanges", [(e.request.request_id, e.answer.value if e.answer else None) for e in exchanges])
    for decision in ("approve", "deny"):
        gated = await orch.execute_task("noop", {}, require_approval=True)
        gate = gated.task_id
        await eventually(lambda gate=gate: _waits_for_approval(orch, gate), timeout_seconds=10, what="the gate")
        status = await (orch.approve if decision == "approve" else orch.deny)(gated.task_id, decision)
        ended = (await gated.wait(timeout_seconds=10)).status
        story("gate", decision, status, ended, (await orch.task(gated.task_id)).approval_required)
    streamed = await orch.execute_task("tokens", {"count": 300})
    story("chunks", [chunk.index async for chunk in streamed.stream()] == list(range(1, 301)), await streamed.result())
    return story


async def _waits_for_approval(orch: AsyncOrchestratorAPI, task_id: str) -> bool:
    return (await orch.task(task_id)).status is TaskStatus.APPROVAL_REQUIRED


# Every home, embedded and behind a daemon (each on a store of its own: listings see every task it holds).
HOMES = ["memory", "sqlite", "nats", "daemon", "daemon-sqlite", "daemon-nats"]


@contextlib.asynccontextmanager
async def backend(kind: str, registry: str, directory: Path) -> AsyncIterator[AsyncOrchestratorAPI]:
    """The orchestrator a user's script talks to, with its tasks in one home."""
    async with contextlib.AsyncExitStack() as stack:
        server_binary = nats_server_process.binary()
        if kind.endswith("nats") and server_binary is None:
            pytest.skip("nats-server not installed")
        nats = None
        if kind.endswith("nats"):
            assert server_binary is not None
            nats = nats_server_process.start(directory, server_binary)
            stack.callback(nats.stop)
        if kind.startswith("daemon"):
            options: dict[str, Any] = {}
            if kind == "daemon-sqlite":
                options["store_path"] = str(directory / "tasks.db")
            elif nats is not None:
                options["home"] = await PartitionedHome.open(
                    NatsOptions((nats.url,)), replica=kind, partitions=PARTITIONS
                )
            server = await stack.enter_async_context(OrchestratorServer(registry, port=0, **options))
            yield await stack.enter_async_context(RemoteOrchestrator(server.address))
            return
        if kind == "sqlite":
            store = await SqliteTaskStore(directory / "tasks.db").open()
            stack.push_async_callback(store.close)
            yield await stack.enter_async_context(AsyncOrchestrator(registry, task_store=store))
        elif nats is not None:
            home = await PartitionedHome.open(NatsOptions((nats.url,)), replica=kind, partitions=PARTITIONS)
            yield await stack.enter_async_context(AsyncOrchestrator(registry, home=home))
        else:
            yield await stack.enter_async_context(AsyncOrchestrator(registry))


async def test_a_script_runs_unchanged_on_every_backend_and_every_home(
    registry: RegistryServer, start_worker: Callable[..., Any], gates: Gates, tmp_path: Path
) -> None:
    await start_worker()
    await start_worker(AskingWorker)
    stories = {}
    for kind in HOMES:
        directory = tmp_path / kind
        directory.mkdir()
        async with backend(kind, registry.address, directory) as orchestrator:
            stories[kind] = await script(orchestrator, gates, kind)
    here = stories["memory"]
    for kind, there in stories.items():
        assert there.lines == here.lines, kind
    assert ("health", [(WorkerState.ACTIVE, "closed")] * 2) in here.lines
    refused = [line for line in here.lines if line[0] == "refused"]
    assert [kind for _, kind, _, _ in refused] == [
        "InvalidParametersError",
        "InvalidTaskOptionsError",
        "NoWorkerError",
        "TaskExistsError",
        "TaskNotFoundError",
    ]
    assert len(refused[0][2]["problems"]) == 2  # every problem listed, across the daemon too
