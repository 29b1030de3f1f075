"""Two `wa registry --store nats://...` processes serve one view; a worker given both survives losing one."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from processes import FAST_WORKER, Daemon, Start, wa

from tests.nats_server import NatsServer

REPLICA = ("--ttl", "3", "--sweep-interval", "0.2")


async def listing(registry: Daemon) -> dict[str, dict[str, Any]]:
    result = await wa("workers", "--registry", registry.address, "--json")
    assert result.code == 0, result.err
    return {w["worker_id"]: w for w in json.loads(result.out)}


async def until(registry: Daemon, condition: Any, deadline_seconds: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + deadline_seconds
    while True:
        workers = await listing(registry)
        if condition(workers):
            return workers
        assert time.monotonic() < deadline, f"condition never held; last listing: {workers}"


async def test_a_worker_registered_with_two_replicas_stays_listed_when_one_stops(
    start: Start, nats_server: NatsServer
) -> None:
    a = await start("registry", "--port", "0", "--store", nats_server.url, *REPLICA)
    b = await start("registry", "--port", "0", "--store", nats_server.url, *REPLICA)
    worker = await start(
        "worker", "_workers:EchoWorker", "--port", "0", "--registry", f"{a.address},{b.address}", *FAST_WORKER
    )
    await until(b, lambda workers: worker.worker_id in workers, deadline_seconds=10)
    assert worker.worker_id in await listing(a)
    assert await a.stop() == 0
    stopped = time.time()

    def beat_after_stop(workers: dict[str, dict[str, Any]]) -> bool:
        beat = (workers.get(worker.worker_id) or {}).get("last_heartbeat")
        return beat is not None and datetime.fromisoformat(beat).timestamp() > stopped + 0.5

    await until(b, beat_after_stop, deadline_seconds=15)


async def test_a_store_that_is_not_nats_is_a_usage_error() -> None:
    result = await wa("registry", "--port", "0", "--store", "redis://127.0.0.1:6379")
    assert result.code == 2
    assert "expected memory or nats://" in result.err
    from_env = await wa("registry", "--port", "0", extra_env={"WA_REGISTRY_STORE": "nats://no-port"})
    assert from_env.code == 2
    assert "malformed NATS URL 'nats://no-port'" in from_env.err


async def test_an_unreachable_nats_is_reported_by_address() -> None:
    result = await wa("registry", "--port", "0", "--store", "nats://127.0.0.1:1")
    assert result.code == 1
    assert "cannot connect to NATS at nats://127.0.0.1:1" in result.err
