"""Two `wa orchestrator --store nats://...` daemons share tasks: submitted through one, read through the other."""

from __future__ import annotations

import asyncio
import json
import signal

from _chaos_workers import expected_output
from processes import FAST_REGISTRY, FAST_WORKER, Start, wa

from tests.nats_server import NatsServer
from worker_abstraction import RemoteOrchestrator, TaskStatus
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStore
from worker_abstraction.stores.jetstream import NatsOptions, connect


async def test_tasks_submitted_to_one_daemon_are_read_and_watched_through_the_other(
    start: Start, nats_server: NatsServer
) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start("worker", "_workers:EchoWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER)
    shared = ("--registry", registry.address, "--store", nats_server.url)
    a = await start("orchestrator", "--port", "0", *shared, "--replica", "a")
    b = await start("orchestrator", "--port", "0", *shared, "--replica", "b")

    submits = [
        wa("submit", "shout", "-p", f"text=hi {n}", "--orchestrator", a.address, "--json", "--timeout", "30")
        for n in range(3)
    ]
    for n, done in enumerate(await asyncio.gather(*submits)):
        assert done.code == 0, done.err
        final = json.loads(done.out.splitlines()[-1])
        assert final["output"] == {"result": f"Processed: HI {n}"}
        got = await wa("task", "get", final["task_id"], "--orchestrator", b.address, "--json")
        assert got.code == 0, got.err
        record = json.loads(got.out)
        assert (record["status"], record["output"]) == ("COMPLETED", {"result": f"Processed: HI {n}"})
        watched = await wa("task", "watch", final["task_id"], "--orchestrator", b.address)
        assert watched.code == 0, watched.err
        assert "COMPLETED" in watched.out

    unknown = await wa("task", "get", "no-such-task", "--orchestrator", b.address)
    assert unknown.code == 1 and "no-such-task" in unknown.err


async def test_a_daemon_whose_nats_is_unreachable_says_so_and_exits() -> None:
    result = await wa("orchestrator", "--port", "0", "--store", "nats://127.0.0.1:1", "--registry", "127.0.0.1:1")
    assert result.code != 0
    assert "nats://127.0.0.1:1" in result.err


async def test_tasks_of_a_daemon_killed_mid_run_finish_on_the_other_and_its_callers_follow_them_there(
    start: Start, nats_server: NatsServer
) -> None:
    registry = await start("registry", "--port", "0", "--ttl", "30")
    for _ in range(2):
        await start("worker", "_chaos_workers:ChaosWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER)
    shared = ("--registry", registry.address, "--store", nats_server.url, "--lease-seconds", "2")
    doomed = await start("orchestrator", "--port", "0", *shared, "--replica", "doomed")
    survivor = await start("orchestrator", "--port", "0", *shared, "--replica", "survivor")

    # The caller lists both daemons: it talks to the first, and moves to the other when it dies.
    async with RemoteOrchestrator(f"{doomed.address},{survivor.address}") as remote:
        await remote.wait_for_workers("work", count=2, timeout_seconds=10)
        handles = [await remote.execute_task("work", {"n": n, "millis": 400}) for n in range(12)]
        finished = [await handles[0].wait(timeout_seconds=20)]  # some work is done, the rest in flight
        assert await doomed.stop(signal.SIGKILL) == -signal.SIGKILL
        finished += await asyncio.gather(*(handle.wait(timeout_seconds=60) for handle in handles[1:]))
        for n, final in enumerate(finished):
            assert (final.status, final.output) == (TaskStatus.COMPLETED, expected_output(n)), final
            record = await remote.task(handles[n].task_id)
            assert record.status is TaskStatus.COMPLETED

    client = await connect(NatsOptions((nats_server.url,)))
    try:
        store = await PartitionedStore.open(client)
        try:
            found = [await store.get(handle.task_id) for handle in handles]
        finally:
            await store.aclose()
    finally:
        await client.close()
    docs = [found_doc[0] for found_doc in found if found_doc is not None]
    assert len(docs) == 12 and all(doc.finished for doc in docs)
    # Every task was accepted by the doomed daemon (its caller talked to it): those its survivor finished were
    # taken over (a document names its holder as replica#epoch), so the kill mattered.
    assert any(doc.holder.rpartition("#")[0] == "survivor" for doc in docs), [doc.holder for doc in docs]
