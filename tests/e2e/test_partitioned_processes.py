"""`wa orchestrator --store nats://... --nats-home partitioned`: daemons sharing tasks in leased partitions."""

from __future__ import annotations

import asyncio
import json

import pytest
from processes import FAST_REGISTRY, FAST_WORKER, Start, wa

from tests.nats_server import NatsServer
from worker_abstraction import RemoteOrchestrator, TaskStatus
from worker_abstraction.orchestrator.homes.nats.partitioned_store import PartitionedStore, PartitionedStoreOptions
from worker_abstraction.stores import serial
from worker_abstraction.stores.jetstream import NatsOptions, connect

pytestmark = pytest.mark.timeout(90)

TASKS_PER_DAEMON = 20


async def test_two_partitioned_daemons_complete_every_task_submitted_through_either_once(
    start: Start, nats_server: NatsServer
) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start("worker", "_workers:EchoWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER)
    shared = ("--registry", registry.address, "--store", nats_server.url, "--nats-home", "partitioned")
    a = await start("orchestrator", "--port", "0", *shared, "--replica", "a")
    # The environment selects the home as the flag does (flag > environment > config file > default).
    b = await start(
        "orchestrator", "--port", "0", *shared[:-2], "--replica", "b", extra_env={"WA_NATS_HOME": "partitioned"}
    )

    submitted = await asyncio.gather(
        *(
            wa("submit", "shout", "-p", f"text={daemon.port} {n}", "--orchestrator", daemon.address, "--json")
            for daemon in (a, b)
            for n in range(3)
        )
    )
    ids = set()
    for done in submitted:
        assert done.code == 0, done.err
        final = json.loads(done.out.splitlines()[-1])
        assert final["status"] == "COMPLETED" and final["output"]["result"].startswith("Processed: "), final
        ids.add(final["task_id"])

    handles = []
    for daemon in (a, b):
        async with RemoteOrchestrator(daemon.address) as remote:
            made = [await remote.execute_task("shout", {"text": f"{daemon.port} {n}"}) for n in range(TASKS_PER_DAEMON)]
            for n, handle in enumerate(made):
                final = await handle.wait(timeout_seconds=30)
                assert (final.status, final.output) == (
                    TaskStatus.COMPLETED,
                    {"result": f"Processed: {daemon.port} {n}"},
                )
            handles += made
    ids |= {handle.task_id for handle in handles}
    assert len(ids) == 2 * (3 + TASKS_PER_DAEMON)

    # Each task is one finished document in the partitioned home's bucket, run as one attempt (none ran twice),
    # and each daemon ran some of them: the tasks it accepted land in partitions it holds.
    client = await connect(NatsOptions((nats_server.url,)))
    try:
        store = await PartitionedStore.open(client, PartitionedStoreOptions())
        try:
            found = [await store.get(task_id) for task_id in ids]
        finally:
            await store.aclose()
    finally:
        await client.close()
    docs = [one[0] for one in found if one is not None]
    assert len(docs) == len(ids) and all(doc.finished for doc in docs), docs
    records = [serial.record_of(doc.record) for doc in docs]
    assert all(record.status is TaskStatus.COMPLETED and len(record.attempts) == 1 for record in records), records
    assert {doc.holder.rpartition("#")[0] for doc in docs} == {"a", "b"}  # (holder: replica#epoch)


@pytest.mark.parametrize(
    ("args", "environment"),
    [(("--nats-home", "sharded"), {}), ((), {"WA_NATS_HOME": "sharded"})],
    ids=["flag", "environment"],
)
async def test_an_unknown_nats_home_exits_2_naming_the_choices(
    args: tuple[str, ...], environment: dict[str, str]
) -> None:
    result = await wa(
        "orchestrator", "--port", "0", "--store", "nats://127.0.0.1:1", "--registry", "127.0.0.1:1", *args,
        extra_env=environment,
    )  # fmt: skip
    assert result.code == 2, result.err
    assert "--nats-home" in result.err and "sharded" in result.err
    assert "partitioned" in result.err
