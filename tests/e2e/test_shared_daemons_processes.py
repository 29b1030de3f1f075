"""Two `wa orchestrator --store nats://...` daemons share tasks: submitted through one, read through the other."""

from __future__ import annotations

import asyncio
import json

from processes import FAST_REGISTRY, FAST_WORKER, Start, wa

from tests.nats_server import NatsServer


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
