"""Retention on the NATS partitioned home, on a real nats-server: finished tasks past it are gone (their ids answer
NOT_FOUND, saying they may have expired; their idempotency keys make new tasks) and NATS holds nothing of them
(documents, keys, updates: read with the JetStream API), while unfinished ones stay whole; a capability can have
its own time, dead letters their own; a daemon (`wa orchestrator --retention ... --store nats://...`) does it too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import nats
import pytest
from nats.js.client import JetStreamContext

from tests.conftest import Gates, eventually
from tests.e2e.processes import Start, start  # noqa: F401  (the fixture that starts `wa` processes)
from tests.nats_server import NatsServer
from tests.orchestrator.replicas import Replica, replicas
from worker_abstraction import (
    AsyncOrchestrator,
    RegistryServer,
    RemoteOrchestrator,
    RetryPolicy,
    TaskNotFoundError,
    TaskStatus,
)
from worker_abstraction.orchestrator.core.retention import Retention
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStoreOptions
from worker_abstraction.stores.jetstream.partitions import partition_of
from worker_abstraction.stores.jetstream.tasks import idempotency_digest, letter_key
from worker_abstraction.stores.jetstream.updates import SUBJECT_PREFIX, task_token

pytestmark = pytest.mark.timeout(90)

PARTITIONS = 4
DOCS, KEYS, LETTERS, UPDATES = "KV_wa_ptasks", "KV_wa_ptask_keys", "KV_wa_pdead_letters", "WA_UPDATES"
_RETRY_ONCE = RetryPolicy(max_attempts=2, initial_backoff_seconds=0, retry_task_errors=True)
STORE = PartitionedStoreOptions(moved_marker_seconds=1)  # (the marker a finished task leaves on its live key)


@pytest.fixture
async def replica(registry: RegistryServer, nats_server: NatsServer) -> AsyncIterator[Replica]:
    async with replicas(registry.address, nats_server.url, partitions=PARTITIONS, store=STORE) as open_replica:
        yield open_replica


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    """A JetStream client of the test's own, to see what the streams hold."""
    client = await nats.connect(nats_server.url)
    yield client.jetstream()
    await client.close()


async def _subjects(js: JetStreamContext, stream: str) -> set[str]:
    """The subjects a stream holds messages on now."""
    info = await js.stream_info(stream, subjects_filter=">")
    return set(info.state.subjects or {})


async def _gone(orchestrator: AsyncOrchestrator, task_id: str) -> bool:
    try:
        await orchestrator.task(task_id)
    except TaskNotFoundError:
        return True
    return False


def _traces(home: PartitionedHome, task_id: str, key: str = "") -> dict[str, set[str]]:
    """The subjects where a task leaves something, by stream (live and finished documents, key, updates)."""
    store = home.store
    traces = {
        DOCS: {store.doc_subject(task_id), f"$KV.wa_ptasks.{store.finished_key(task_id)}"},
        UPDATES: {f"{SUBJECT_PREFIX}.{task_token(task_id)}"},
    }
    if key:
        traces[KEYS] = {f"$KV.wa_ptask_keys.{idempotency_digest(key)}"}
    return traces


async def _holds_any(js: JetStreamContext, traces: dict[str, set[str]]) -> bool:
    for stream, subjects in traces.items():
        if await _subjects(js, stream) & subjects:
            return True
    return False


async def test_finished_tasks_expire_with_their_keys_and_updates_and_unfinished_ones_stay(
    replica: Replica, start_worker: Callable[..., Any], gates: Gates, js: JetStreamContext
) -> None:
    await start_worker(max_concurrent_tasks=32)
    orch, home = await replica("a", retention=Retention(finished_seconds=1, sweep_seconds=0.2))
    await orch.wait_for_workers("echo", timeout_seconds=10)
    waiting = await orch.execute_task("wait_for", {"name": "retention-later"}, idempotency_key="kept")
    done = [await orch.execute_task("echo", {"text": str(n)}, idempotency_key=f"k{n}") for n in range(12)]
    for n, handle in enumerate(done):
        assert await handle.result(timeout_seconds=10) == {"text": str(n)}
    await eventually(lambda: waiting.status is TaskStatus.RUNNING, what="the unfinished task runs")
    finished_traces = [_traces(home, h.task_id, f"k{n}") for n, h in enumerate(done)]
    assert all([await _holds_any(js, traces) for traces in finished_traces])  # (kept while within retention)

    for handle in done:
        await eventually(lambda h=handle: _gone(orch, h.task_id), timeout_seconds=10, what="finished tasks expire")
    with pytest.raises(TaskNotFoundError, match="may have expired"):
        await orch.task(done[0].task_id)
    for traces in finished_traces:  # (the moved marker on the live key lasts its own second)
        await eventually(lambda t=traces: _not(js, t), timeout_seconds=10, what="NATS holds nothing of them")

    # The unfinished task is whole: its document, its key, its updates; its key still finds it.
    unfinished = _traces(home, waiting.task_id, "kept")
    assert home.store.doc_subject(waiting.task_id) in await _subjects(js, DOCS)
    assert unfinished[KEYS] <= await _subjects(js, KEYS)
    assert unfinished[UPDATES] <= await _subjects(js, UPDATES)
    assert (await orch.execute_task("wait_for", {"name": "x"}, idempotency_key="kept")).task_id == waiting.task_id
    # What the streams hold is the unfinished task's alone.
    assert await _subjects(js, DOCS) == {home.store.doc_subject(waiting.task_id)}
    assert await _subjects(js, KEYS) == unfinished[KEYS]
    assert await _subjects(js, UPDATES) == unfinished[UPDATES]

    again = await orch.execute_task("echo", {"text": "0"}, idempotency_key="k0")
    assert again.task_id != done[0].task_id  # the key expired with its task: a new task
    assert await again.result(timeout_seconds=10) == {"text": "0"}
    gates.open("retention-later")
    assert await waiting.result(timeout_seconds=10) == "retention-later"
    assert (await orch.task(waiting.task_id)).status is TaskStatus.COMPLETED


async def test_a_capability_may_be_kept_for_its_own_time_and_dead_letters_for_theirs(
    replica: Replica, start_worker: Callable[..., Any], js: JetStreamContext
) -> None:
    await start_worker()
    retention = Retention(finished_seconds=3600, per_capability={"echo": 1}, dead_letters_seconds=2, sweep_seconds=0.2)
    orch, home = await replica("a", retention=retention)
    await orch.wait_for_workers("echo", timeout_seconds=10)
    echo = await orch.execute_task("echo", {"text": "x"})
    kept = await orch.execute_task("sleepy", {"seconds": 0})
    failing = await orch.execute_task("explode", {}, retry_policy=_RETRY_ONCE)
    for handle in (echo, kept, failing):
        await handle.wait(timeout_seconds=10)
    assert [letter.task_id for letter in await orch.dead_letters()] == [failing.task_id]
    assert await _subjects(js, LETTERS)

    await eventually(lambda: _gone(orch, echo.task_id), timeout_seconds=10, what="echo is kept one second")
    await eventually(lambda: _not(js, _traces(home, echo.task_id)), timeout_seconds=10, what="nothing left of it")
    await eventually(lambda: _subjects_empty(js, LETTERS), timeout_seconds=10, what="the dead letter expires")
    assert await orch.dead_letters() == []
    for handle in (kept, failing):  # kept for an hour: their records, documents and last updates
        assert (await orch.task(handle.task_id)).status in (TaskStatus.COMPLETED, TaskStatus.FAILED)
        assert f"$KV.wa_ptasks.{home.store.finished_key(handle.task_id)}" in await _subjects(js, DOCS)
        assert f"{SUBJECT_PREFIX}.{task_token(handle.task_id)}" in await _subjects(js, UPDATES)


async def _subjects_empty(js: JetStreamContext, stream: str) -> bool:
    return not await _subjects(js, stream)


async def _not(js: JetStreamContext, traces: dict[str, set[str]]) -> bool:
    return not await _holds_any(js, traces)


async def test_a_daemon_on_nats_lets_what_ended_expire_as_its_retention_flags_say(
    registry: RegistryServer,
    start_worker: Callable[..., Any],
    start: Start,  # noqa: F811  (the fixture imported above)
    nats_server: NatsServer,
    js: JetStreamContext,
) -> None:
    await start_worker()
    daemon = await start(
        "orchestrator", "--port", "0", "--registry", registry.address, "--store", nats_server.url,
        "--retention", "1h", "--retention-for", "echo=1s", "--dead-letter-retention", "1s",
    )  # fmt: skip
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("echo", timeout_seconds=10)
        echo = await remote.execute_task("echo", {"text": "x"}, idempotency_key="daemon-key")
        kept = await remote.execute_task("sleepy", {"seconds": 0})
        failing = await remote.execute_task("explode", {}, retry_policy=_RETRY_ONCE)
        for handle in (echo, kept, failing):
            await handle.wait(timeout_seconds=10)
        assert [letter.task_id for letter in await remote.dead_letters()] == [failing.task_id]
        traces = {
            # (the daemon's home has 32 partitions, and leaves a 10 s marker on a finished task's live key)
            DOCS: {
                f"$KV.wa_ptasks.{partition_of(echo.task_id, 32)}.{letter_key(echo.task_id)}",
                f"$KV.wa_ptasks.done.{letter_key(echo.task_id)}",
            },
            KEYS: {f"$KV.wa_ptask_keys.{idempotency_digest('daemon-key')}"},
            UPDATES: {f"{SUBJECT_PREFIX}.{task_token(echo.task_id)}"},
        }
        assert await _holds_any(js, traces)
        await eventually(lambda: _not(js, traces), timeout_seconds=20, what="NATS holds nothing of the echo task")
        await eventually(lambda: _subjects_empty(js, LETTERS), timeout_seconds=10, what="the dead letter expires")
        again = await remote.execute_task("echo", {"text": "x"}, idempotency_key="daemon-key")
        assert again.task_id != echo.task_id  # its key expired with it
        for handle in (kept, failing):  # kept for an hour
            assert f"$KV.wa_ptasks.done.{letter_key(handle.task_id)}" in await _subjects(js, DOCS)
            assert (await remote.task(handle.task_id)).status in (TaskStatus.COMPLETED, TaskStatus.FAILED)


async def test_dead_letters_purged_leave_nothing_behind(
    replica: Replica, start_worker: Callable[..., Any], js: JetStreamContext
) -> None:
    await start_worker()
    orch, _ = await replica("a")  # (no retention: dead letters stay until taken)
    await orch.wait_for_workers("explode", timeout_seconds=10)
    failing = [await orch.execute_task("explode", {}, retry_policy=_RETRY_ONCE) for _ in range(2)]
    for handle in failing:
        await handle.wait(timeout_seconds=10)
    assert {letter.task_id for letter in await orch.dead_letters()} == {h.task_id for h in failing}
    assert await orch.purge_dead_letters() == 2
    assert await orch.dead_letters() == []
    await eventually(lambda: _subjects_empty(js, LETTERS), timeout_seconds=10, what="no deletion marker stays")
