"""Fuzz every RPC of worker.proto against real `wa` processes: raw bytes, hostile but valid messages, and
messages filled with random values.

The hostile shapes include the boundary integers on every numeric field (0, -1, 2**31-1, 2**31, 2**32, 2**63-1,
-2**63, 2**64-1, as each wire type holds them), NaN and the infinities, invalid google.protobuf.Timestamps,
digits of other scripts in numbers written as text (page tokens, ports), and lone surrogates in JSON texts.
Every case is held to the oracles of `oracle.py` and `harness.py`: no UNKNOWN or INTERNAL status, no hang, no
crash, short messages, no log flood, obviously invalid input refused, and every stream answers within
ANSWER_SECONDS of its caller's last message while the caller keeps its side open.

Sizes: WA_FUZZ_EXAMPLES cases per RPC and kind (default 4: a few hundred cases in all for `make test`;
`make fuzz` runs 280 per RPC and kind, over 19,000 distinct cases). Each test collects every failure of its
cases and reports them all.
"""

from __future__ import annotations

import os
import time

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import Harness
from tests.fuzz.oracle import must_refuse
from tests.fuzz.rpcs import Rpc, all_rpcs, stub_paths
from tests.fuzz.strategies import Case, Known, baselines, hostile_message, random_message, raw_bytes
from worker_abstraction._proto import worker_pb2 as pb

EXAMPLES = int(os.environ.get("WA_FUZZ_EXAMPLES", "4"))
RPCS = all_rpcs()

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.timeout(120 + 3 * EXAMPLES),
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=EXAMPLES <= 20,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def test_the_harness_covers_every_rpc_of_the_generated_stubs() -> None:
    covered = {rpc.path for rpc in RPCS}
    assert covered == stub_paths()
    assert {rpc.name for rpc in RPCS} == set(baselines(Known()))


def _assert_no_findings(harness: Harness, rpc: Rpc) -> None:
    found = harness.findings.for_rpc(rpc.name)
    assert not found, f"{len(found)} distinct findings on {rpc.name}:\n" + harness.findings.report(found)


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
def test_raw_bytes_never_get_unknown_hang_or_crash(harness: Harness, rpc: Rpc) -> None:
    @FUZZ_SETTINGS
    @given(st.lists(raw_bytes(), min_size=1, max_size=3 if rpc.client_streaming else 1))
    def run(items: list[tuple[str, bytes]]) -> None:
        harness.check(rpc, Case([data for _, data in items], items[0][0]))

    run()
    _assert_no_findings(harness, rpc)


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
def test_hostile_messages_are_refused_briefly_without_unknown_hang_or_crash(harness: Harness, rpc: Rpc) -> None:
    _seed_known_tasks(harness)

    @FUZZ_SETTINGS
    @given(st.data())
    def run(data: st.DataObject) -> None:
        count = data.draw(st.integers(1, 3)) if rpc.client_streaming else 1
        built, labels, blobs, refuse = [], [], [], None
        for _ in range(count):
            message, label, tail = data.draw(hostile_message(rpc, baselines(harness.known)[rpc.name]))
            built.append(message)
            labels.append(label)
            blobs.append(message.SerializeToString() + tail)
            refuse = refuse or must_refuse(rpc, message)
        harness.check(rpc, Case(blobs, " | ".join(labels), refuse, built))

    run()
    _assert_no_findings(harness, rpc)


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
def test_random_filled_messages_are_answered_promptly_without_unknown_hang_or_crash(harness: Harness, rpc: Rpc) -> None:
    @FUZZ_SETTINGS
    @given(st.lists(random_message(rpc.request_type.DESCRIPTOR), min_size=1, max_size=3 if rpc.client_streaming else 1))
    def run(messages: list[Message]) -> None:
        refuse = None if rpc.client_streaming else must_refuse(rpc, messages[0])
        harness.check(rpc, Case([m.SerializeToString() for m in messages], "random-filled", refuse, messages))

    run()
    _assert_no_findings(harness, rpc)


def _seed_known_tasks(harness: Harness) -> None:
    """Give the baselines task ids that exist: one task through the daemon, one straight on the worker."""
    if harness.known.task_ids:
        return
    ids = []
    for path_rpc in ("OrchestratorService/SubmitTask", "WorkerService/ExecuteTask"):
        rpc = next(r for r in RPCS if r.name == path_rpc)
        message = baselines(harness.known)[path_rpc]()
        outcome = harness.send(rpc, [message.SerializeToString()])
        if outcome.code is None:
            ids.append(rpc.response_type.FromString(outcome.responses[0]).task_id)  # type: ignore[attr-defined]
    harness.known.task_ids = tuple(ids)


def test_after_the_fuzzing_the_cluster_still_works_and_every_accepted_task_ends(harness: Harness) -> None:
    problems = []
    daemon = harness.channel(harness.cluster.address("OrchestratorService"))
    submit = daemon.unary_unary(
        "/worker_abstraction.OrchestratorService/SubmitTask",
        request_serializer=pb.SubmitTaskRequest.SerializeToString,
        response_deserializer=pb.SubmitTaskResponse.FromString,
    )
    task = pb.Task(capability_name="echo", worker_id=harness.known.worker_id, timeout_seconds=5)
    task.parameters.add(key="text", value_json='"still alive"')
    watch = daemon.unary_stream(
        "/worker_abstraction.OrchestratorService/WatchTask",
        request_serializer=pb.WatchTaskRequest.SerializeToString,
        response_deserializer=pb.TaskResult.FromString,
    )
    try:
        task_id = submit(pb.SubmitTaskRequest(task=task), timeout=5).task_id
        last = list(watch(pb.WatchTaskRequest(task_id=task_id), timeout=15))[-1]
        if last.status != pb.TASK_STATUS_COMPLETED:
            problems.append(f"a normal task ended {pb.TaskStatus.Name(last.status)}: {last.error_message[:200]}")
    except grpc.RpcError as error:
        problems.append(f"a normal task did not complete: {error.code().name} {error.details()[:200]}")
    problems += _tasks_left_running(harness)
    for proc in harness.cluster.procs.values():
        if proc.rss_bytes() > 600 * 2**20:
            problems.append(f"{proc.name} RSS {proc.rss_bytes() / 2**20:.0f} MiB after the run")
        if proc.log_bytes() > 50 * 2**20:
            problems.append(f"{proc.name} wrote {proc.log_bytes() / 2**20:.0f} MiB of logs")
    assert not problems, "\n".join(problems)


def _tasks_left_running(harness: Harness) -> list[str]:
    """Every task the daemon accepted must end once the fuzzed timeouts (5 s at most, or a queue timeout) pass."""
    daemon = harness.channel(harness.cluster.address("OrchestratorService"))
    list_tasks = daemon.unary_unary(
        "/worker_abstraction.OrchestratorService/ListTasks",
        request_serializer=pb.ListTasksRequest.SerializeToString,
        response_deserializer=pb.ListTasksResponse.FromString,
    )
    statuses = [pb.TASK_STATUS_UNKNOWN, pb.TASK_STATUS_PENDING, pb.TASK_STATUS_RUNNING]
    deadline = time.monotonic() + 20
    while True:
        try:
            page = list_tasks(pb.ListTasksRequest(statuses=statuses, limit=1000), timeout=10)
        except grpc.RpcError as error:
            return [f"ListTasks failed after the run: {error.code().name} {error.details()[:200]}"]
        if not page.tasks or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return [
        f"task {t.task_id[:40]!r} ({t.capability[:40]!r}) still {pb.TaskStatus.Name(t.status)} 20 s after the run"
        for t in page.tasks[:20]
    ]
