"""A daemon's memory stays bounded under a stream of hostile calls (issue 24).

Real `wa registry`, `wa worker` and `wa orchestrator --store` processes (the daemon's resident memory is what
is under test). Each round throws a mix at the daemon: tasks with 200 KB arguments it accepts and runs (their
records and outputs are what a daemon is tempted to keep), sessions that submit, watch past int64 and are
dropped, submissions it must refuse (lone surrogates, NaN, invalid Timestamps, unknown capabilities carrying
a megabyte, fresh idempotency keys), junk page tokens, watches and lookups of ids nobody knows. After a
warm-up (the memory of recent tasks full, every code path run once), further rounds must not grow the daemon
by more than MAX_GROWTH_MIB: without the bounds each round of 150 such tasks kept about 90 MiB more.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import grpc
import pytest

from tests.fuzz.cluster import Cluster
from worker_abstraction._proto import worker_pb2 as pb

pytestmark = pytest.mark.timeout(120)  # (about 40 s: a warm-up and three rounds)

TASKS_PER_ROUND = 150
ROUNDS = 3
MAX_GROWTH_MIB = 120
_OPTIONS = [("grpc.max_send_message_length", 64 * 2**20), ("grpc.max_receive_message_length", 64 * 2**20)]
PREFIX = "/worker_abstraction.OrchestratorService/"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("hostile-memory"))
    cluster.start()
    yield cluster
    cluster.stop()


class Calls:
    """The daemon's RPCs, raw: requests in, responses (or errors) out."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.numbers = itertools.count()
        self.last_task_id = ""

    def unary(self, name: str, request: object, response: type) -> object:
        call = self.channel.unary_unary(
            PREFIX + name, request_serializer=_serialize, response_deserializer=response.FromString
        )
        try:
            return call(request, timeout=10)
        except grpc.RpcError as error:
            assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), error.details()
            return error

    def watch(self, task_id: str, after: int = 0) -> None:
        call = self.channel.unary_stream(
            PREFIX + "WatchTask", request_serializer=_serialize, response_deserializer=pb.TaskResult.FromString
        )
        try:
            for _ in call(pb.WatchTaskRequest(task_id=task_id, after_sequence=after), timeout=10):
                pass
        except grpc.RpcError as error:
            assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), error.details()

    def session(self, requests: list[pb.SessionRequest]) -> None:
        """Send a few messages on a session, read two answers, and drop it (the caller vanishes)."""
        call = self.channel.stream_stream(
            PREFIX + "OpenSession", request_serializer=_serialize, response_deserializer=pb.SessionResponse.FromString
        )(iter(requests), timeout=10)
        try:
            for number, _ in enumerate(call):
                if number >= 2:
                    break
        except grpc.RpcError as error:
            assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), error.details()
        call.cancel()


def _serialize(message: object) -> bytes:
    return message.SerializeToString()  # type: ignore[attr-defined, no-any-return]


def _task(capability: str, text: str, **fields: object) -> pb.Task:
    task = pb.Task(capability_name=capability, timeout_seconds=5, **fields)  # type: ignore[arg-type]
    task.parameters.add(key="text", value_json=f'"{text}"')
    return task


def _round(calls: Calls, tasks: int) -> None:
    big = "x" * 200_000
    for _ in range(tasks):
        n = next(calls.numbers)
        accepted = calls.unary(
            "SubmitTask",
            pb.SubmitTaskRequest(task=_task("echo", f"{big}{n}"), idempotency_key=f"key-{n}"),
            pb.SubmitTaskResponse,
        )
        calls.last_task_id = getattr(accepted, "task_id", "") or calls.last_task_id
        if n % 10:
            continue
        # Every tenth: the hostile mix, each refused or answered without INTERNAL.
        task_id = getattr(accepted, "task_id", "")
        for refused in (
            pb.SubmitTaskRequest(task=_task("echo", "\\ud800")),
            pb.SubmitTaskRequest(task=_task("echo", "nan"), queue_timeout_seconds=float("nan")),
            pb.SubmitTaskRequest(task=_task("echo", "t", created_at={"seconds": 2**62, "nanos": -1})),
            pb.SubmitTaskRequest(task=_task(f"no_such_capability_{n}", "y" * 2**20), idempotency_key=f"no-{n}"),
        ):
            calls.unary("SubmitTask", refused, pb.SubmitTaskResponse)
        calls.unary("ListTasks", pb.ListTasksRequest(page_token="١٢", limit=10), pb.ListTasksResponse)
        calls.unary("GetTask", pb.GetTaskRequest(task_id=f"nobody-{n}"), pb.TaskRecord)
        calls.watch(f"nobody-{n}")
        calls.watch(task_id, after=2**53)
        calls.session(
            [
                pb.SessionRequest(
                    submits=[
                        pb.SessionSubmit(request_id=1, submit=pb.SubmitTaskRequest(task=_task("echo", f"{big}s{n}")))
                    ]
                ),
                pb.SessionRequest(watches=[pb.WatchTaskRequest(task_id=task_id, after_sequence=2**63 - 1)]),
                pb.SessionRequest(unwatch=[f"nobody-{n}"]),
            ]
        )


def _settled_rss(cluster: Cluster, calls: Calls) -> int:
    """The daemon's resident bytes once the last task it accepted has ended (the others ended before it)."""
    calls.watch(calls.last_task_id)  # (streams until the task's terminal update)
    return cluster.procs["daemon"].rss_bytes()


def test_hostile_calls_do_not_grow_the_daemon_after_a_warm_up(cluster: Cluster) -> None:
    with grpc.insecure_channel(cluster.address("OrchestratorService"), options=_OPTIONS) as channel:
        calls = Calls(channel)
        _round(calls, TASKS_PER_ROUND + 50)  # warm-up: past what the daemon keeps of recent tasks
        baseline = _settled_rss(cluster, calls)
        after = []
        for _ in range(ROUNDS):
            _round(calls, TASKS_PER_ROUND)
            after.append(_settled_rss(cluster, calls))
    growth_mib = (max(after) - baseline) / 2**20
    seen = ", ".join(f"{rss / 2**20:.0f}" for rss in after)
    assert growth_mib < MAX_GROWTH_MIB, (
        f"daemon grew {growth_mib:.0f} MiB after the warm-up ({baseline / 2**20:.0f} MiB, then {seen})"
    )
