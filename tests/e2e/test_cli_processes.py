"""`wa registry`, `wa worker`, `wa submit` and `wa workers` as real processes talking over gRPC."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from grpc import aio
from processes import FAST_REGISTRY, FAST_WORKER, REPO, Daemon, Start, wa

from tests.conftest import eventually
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc


async def listed(registry: Daemon) -> dict[str, dict[str, Any]]:
    """`wa workers --json`, keyed by worker id."""
    result = await wa("workers", "--registry", registry.address, "--json")
    assert result.code == 0, result.err
    return {w["worker_id"]: w for w in json.loads(result.out)}


async def until_listed(
    registry: Daemon, condition: Callable[[dict[str, dict[str, Any]]], bool], deadline_seconds: float
) -> float:
    """Poll `wa workers --json` until `condition` holds; returns the seconds it took."""
    began = time.monotonic()
    while True:
        workers = await listed(registry)
        if condition(workers):
            return time.monotonic() - began
        assert time.monotonic() - began < deadline_seconds, f"condition never held; last listing: {workers}"


async def start_cluster(start: Start, workers: int = 1) -> tuple[Daemon, list[Daemon]]:
    registry = await start("registry", "--host", "127.0.0.1", "--port", "0", *FAST_REGISTRY)
    started = [
        await start("worker", "_workers:EchoWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER)
        for _ in range(workers)
    ]
    ids = {w.worker_id for w in started}
    await until_listed(registry, lambda listing: ids <= listing.keys(), deadline_seconds=10)
    return registry, started


async def test_submit_prints_the_worker_each_transition_and_the_output_then_exits_0(start: Start) -> None:
    registry, [worker] = await start_cluster(start)
    result = await wa("submit", "shout", "--param", "text=hello world", "--registry", registry.address)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("task ") and f"-> worker {worker.worker_id} ({worker.address})" in lines[0]
    statuses = [line.split()[0] for line in lines[1:] if line.split() and line.split()[0].isupper()]
    assert statuses[-1] == "COMPLETED"
    assert json.loads(result.out[result.out.index("{") :]) == {"result": "Processed: HELLO WORLD"}


async def test_submit_of_a_failing_capability_exits_1_with_its_message(start: Start) -> None:
    registry, _ = await start_cluster(start)
    result = await wa("submit", "explode", "--registry", registry.address)
    assert result.code == 1
    assert "FAILED" in result.out
    assert "TaskFailedError" in result.err and "kaboom from explode" in result.err


async def test_submit_of_an_unknown_capability_exits_2(start: Start) -> None:
    registry, _ = await start_cluster(start)
    result = await wa("submit", "no_such_capability", "--wait", "0.5", "--registry", registry.address)
    assert result.code == 2
    assert "NoWorkerError" in result.err


async def test_submit_with_bad_parameters_is_rejected_with_exit_2(start: Start) -> None:
    registry, _ = await start_cluster(start)
    # (an unknown parameter, and the required one missing: `text=3` would be the string "3" for a string)
    result = await wa("submit", "shout", "--param", "nope=3", "--registry", registry.address)
    assert result.code == 2
    assert "InvalidParametersError" in result.err  # caught by the orchestrator before any dispatch


async def test_workers_json_lists_both_workers_with_their_capabilities(start: Start) -> None:
    registry, workers = await start_cluster(start, workers=2)
    listing = await listed(registry)
    assert listing.keys() == {w.worker_id for w in workers}
    for worker in workers:
        entry = listing[worker.worker_id]
        assert entry["address"] == worker.address
        assert entry["name"] == "EchoWorker"
        assert {c["name"] for c in entry["capabilities"]} == {"shout", "explode"}
        shout = next(c for c in entry["capabilities"] if c["name"] == "shout")
        assert shout["parameters"] == [{"name": "text", "type": "string", "description": "", "required": True}]
        assert entry["last_heartbeat"] is not None
        assert (entry["state"], entry["state_reason"]) == ("ACTIVE", "")  # heartbeating
    table = await wa("workers", "--registry", registry.address)
    assert table.code == 0, table.err
    header = ["ID", "NAME", "ADDRESS", "CAPABILITIES", "LOAD", "LAST", "HEARTBEAT", "STATE"]
    assert table.out.splitlines()[0].split() == header
    assert all(w.worker_id in table.out for w in workers) and "s ago" in table.out and "ACTIVE" in table.out


async def test_workers_exits_1_when_the_registry_is_unreachable() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await wa("workers", "--registry", f"127.0.0.1:{port}", "--timeout", "3")
    assert result.code == 1
    assert "cannot reach the registry" in result.err


async def test_a_sigkilled_worker_leaves_the_list_within_ttl_and_one_sweep(start: Start) -> None:
    registry, [doomed, survivor] = await start_cluster(start, workers=2)
    doomed.process.kill()
    await doomed.process.wait()
    # TTL 1 s + sweep 0.2 s; the rest is slack for spawning `wa workers` on a busy machine.
    await until_listed(registry, lambda listing: doomed.worker_id not in listing, deadline_seconds=1.2 + 5)
    assert survivor.worker_id in await listed(registry)


async def test_live_workers_reappear_after_the_registry_restarts_on_the_same_port(start: Start) -> None:
    registry, workers = await start_cluster(start, workers=2)
    assert await registry.stop(signal.SIGTERM) == 0
    restarted = await start("registry", "--host", "127.0.0.1", "--port", str(registry.port), *FAST_REGISTRY)
    assert restarted.address == registry.address
    ids = {w.worker_id for w in workers}
    await until_listed(restarted, lambda listing: listing.keys() == ids, deadline_seconds=10)


async def test_sigterm_on_a_worker_exits_0_and_deregisters_it(start: Start) -> None:
    # A long TTL: only deregistration, not eviction, can take the worker off the list.
    registry = await start("registry", "--host", "127.0.0.1", "--port", "0", "--ttl", "60")
    worker = await start("worker", "_workers:EchoWorker", "--port", "0", "--registry", registry.address)
    await until_listed(registry, lambda listing: worker.worker_id in listing, deadline_seconds=10)
    assert await worker.stop(signal.SIGTERM) == 0
    assert worker.worker_id not in await listed(registry)


async def test_a_worker_logs_each_task_received_and_how_it_ended_at_its_default_level(start: Start) -> None:
    worker = await start("worker", "_workers:EchoWorker", "--port", "0", "--registry", "")
    shout, explode = uuid.uuid4().hex, uuid.uuid4().hex
    async with aio.insecure_channel(worker.address) as channel, asyncio.timeout(10):
        stub = pb_grpc.WorkerServiceStub(channel)
        for task_id, capability, params in ((shout, "shout", {"text": "hi"}), (explode, "explode", {})):
            parameters = [pb.TaskParameter(key=k, value_json=json.dumps(v)) for k, v in params.items()]
            task = pb.Task(task_id=task_id, capability_name=capability, parameters=parameters, attempt=1)
            assert (await stub.ExecuteTask(pb.ExecuteTaskRequest(task=task))).accepted
            call = stub.StreamTaskStatus(pb.GetTaskStatusRequest(task_id=task_id))
            _ = [message async for message in call]  # to its terminal update
    # Written while the worker runs (within a turn of its loop), not only when it exits.
    await eventually(
        lambda: f"task shout[{shout}] succeeded in " in worker.stderr_path.read_text(),
        what="the succeeded line of a running worker",
    )
    assert await worker.stop(signal.SIGTERM) == 0
    lines = worker.stderr_path.read_text().splitlines()

    def line_with(text: str) -> int:
        [index] = [i for i, line in enumerate(lines) if text in line]
        return index

    assert " INFO " in lines[line_with(f"task shout[{shout}] received (attempt 1)")]
    assert re.search(r" INFO .* succeeded in \d+\.\d\d m?s$", lines[line_with(f"task shout[{shout}] succeeded in ")])
    assert " INFO " in lines[line_with(f"task explode[{explode}] received (attempt 1)")]
    failed = line_with(f"task explode[{explode}] failed after ")
    assert " ERROR " in lines[failed] and lines[failed].endswith("RuntimeError: kaboom from explode")
    traceback = lines[failed + 1 :]
    assert traceback[0] == "Traceback (most recent call last):"
    assert any('raise RuntimeError("kaboom from explode")' in line for line in traceback)  # the handler's frame


async def test_with_log_format_json_every_line_is_an_object_and_task_lines_name_task_worker_and_attempt(
    start: Start,
) -> None:
    worker = await start("worker", "_workers:EchoWorker", "--port", "0", "--registry", "", "--log-format", "json")
    task_id = uuid.uuid4().hex
    async with aio.insecure_channel(worker.address) as channel, asyncio.timeout(10):
        stub = pb_grpc.WorkerServiceStub(channel)
        parameters = [pb.TaskParameter(key="text", value_json='"hi"')]
        task = pb.Task(task_id=task_id, capability_name="shout", parameters=parameters, attempt=3)
        assert (await stub.ExecuteTask(pb.ExecuteTaskRequest(task=task))).accepted
        _ = [message async for message in stub.StreamTaskStatus(pb.GetTaskStatusRequest(task_id=task_id))]
    assert await worker.stop(signal.SIGTERM) == 0
    lines = [json.loads(line) for line in worker.stderr_path.read_text().splitlines()]
    mine = [line for line in lines if line.get("task_id") == task_id]
    assert mine[0]["message"].endswith("received (attempt 3)") and len(mine) == 2
    assert "succeeded in" in mine[1]["message"]
    assert all((line["worker_id"], line["attempt"]) == (worker.worker_id, 3) for line in mine)


async def test_sigint_on_the_registry_exits_0(start: Start) -> None:
    registry = await start("registry", "--host", "127.0.0.1", "--port", "0")
    assert registry.port > 0
    assert await registry.stop(signal.SIGINT) == 0


@pytest.mark.skipif(not (REPO / "examples" / "seed_worker.py").exists(), reason="examples/seed_worker.py absent")
async def test_the_seed_example_runs_from_the_repository_root(start: Start) -> None:
    registry = await start("registry", "--host", "127.0.0.1", "--port", "0", cwd=REPO)
    await start("worker", "examples.seed_worker:SeedWorker", "--registry", registry.address, cwd=REPO)
    result = await wa("submit", "dummy_processor", "--param", "input=hello world", "--registry", registry.address)
    assert result.code == 0, result.err
    assert "Processed: HELLO WORLD" in result.out
