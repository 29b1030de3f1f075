"""Schedules through a daemon: the contract's schedule calls with the stubs alone (JSON in, records out, every
refusal with its code), the same calls on RemoteOrchestrator, kept in the SQLite store across a restart,
and under credentials a client's schedules are its own and fire only what it may call."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc import aio

from tests.security.test_auth import TOKENS, token_file
from tests.security.test_ownership import _ask, parts
from worker_abstraction import OrchestratorServer, RegistryServer, RemoteOrchestrator, TaskStatus
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.auth import Authenticator
from worker_abstraction.errors import ScheduleExistsError, ScheduleNotFoundError
from worker_abstraction.schedules import Schedule

__all__ = ["parts", "token_file"]  # (the fixtures, used here)

pytestmark = pytest.mark.timeout(60)

HOURLY = {"name": "hourly", "capability": "echo", "params": {"text": "hi"}, "cron": "0 * * * *", "timezone": "UTC"}


async def _refusal(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""


async def test_the_schedule_calls_with_the_stubs_alone_and_their_refusals(
    registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    await start_worker()
    store = str(tmp_path / "tasks.db")
    async with OrchestratorServer(registry.address, port=0, store_path=store) as daemon:
        await daemon.orchestrator.wait_for_workers("echo", timeout_seconds=10)
        async with aio.insecure_channel(daemon.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            made = await stub.CreateSchedule(pb.ScheduleRequest(schedule_json=json.dumps(HOURLY)))
            assert made.name == "hourly" and not made.paused and made.HasField("next_occurrence")
            assert made.next_occurrence.seconds % 3600 == 0 and json.loads(made.schedule_json)["cron"] == "0 * * * *"
            code, details = await _refusal(stub.CreateSchedule(pb.ScheduleRequest(schedule_json=json.dumps(HOURLY))))
            assert code is grpc.StatusCode.ALREADY_EXISTS and "hourly" in details
            for text, says in (
                ("", "empty"),
                ("{", "not JSON"),
                ('{"name": "x"}', "capability is missing"),
                (json.dumps({**HOURLY, "name": "bad name", "cron": "99 * * * *", "overlap": "?"}), "overlap"),
                ("[" * 50_000 + "]" * 50_000, "deeply"),
            ):
                code, details = await _refusal(stub.CreateSchedule(pb.ScheduleRequest(schedule_json=text)))
                assert code is grpc.StatusCode.INVALID_ARGUMENT and says in details, (text[:30], details)
                assert len(details) < 1000
            paused = await stub.PauseSchedule(pb.ScheduleName(name="hourly"))
            assert paused.paused and not paused.HasField("next_occurrence")
            run = await stub.TriggerSchedule(pb.ScheduleName(name="hourly"))
            assert run.task_id.startswith("hourly@manual-")
            resumed = await stub.ResumeSchedule(pb.ResumeScheduleRequest(name="hourly"))
            assert not resumed.paused and resumed.fired == 1 and resumed.last_run == run.task_id
            listed = await stub.ListSchedules(empty_pb2.Empty())
            assert [s.name for s in listed.schedules] == ["hourly"]
            for call in (
                stub.GetSchedule(pb.ScheduleName(name="nope")),
                stub.PauseSchedule(pb.ScheduleName(name="nope")),
                stub.TriggerSchedule(pb.ScheduleName(name="nope")),
                stub.UpdateSchedule(pb.ScheduleRequest(schedule_json=json.dumps({**HOURLY, "name": "nope"}))),
            ):
                code, details = await _refusal(call)
                assert code is grpc.StatusCode.NOT_FOUND and "nope" in details
            code, details = await _refusal(stub.GetSchedule(pb.ScheduleName(name="x" * 5000)))
            assert code is grpc.StatusCode.INVALID_ARGUMENT and len(details) < 300

    # Kept in the store: after a restart it is there, as it was.
    async with OrchestratorServer(registry.address, port=0, store_path=store) as again:
        remote = RemoteOrchestrator(again.address)
        async with remote:
            info = await remote.schedule("hourly")
            assert (info.schedule.cron, info.state.fired, info.state.last_run) == ("0 * * * *", 1, run.task_id)
            assert (await (await remote.watch(run.task_id)).wait(timeout_seconds=10)).status is TaskStatus.COMPLETED
            updated = await remote.update_schedule(Schedule("hourly", "echo", {"text": "ho"}, every_seconds=600))
            assert updated.schedule.every_seconds == 600 and updated.state.fired == 1
            with pytest.raises(ScheduleExistsError):
                await remote.add_schedule(Schedule("hourly", "echo", every_seconds=5))
            assert await remote.remove_schedule("hourly") and not await remote.remove_schedule("hourly")
            with pytest.raises(ScheduleNotFoundError):
                await remote.schedule("hourly")


ALICE, ECHO_ONLY, ROOT = TOKENS["client"], TOKENS["echo-only"], TOKENS["operator"]


async def test_a_clients_schedules_are_its_own_and_fire_only_what_it_may_call(
    parts: tuple[Authenticator, str, Path],
) -> None:
    checks, registry, store = parts
    async with OrchestratorServer(registry, port=0, auth=checks, store_path=str(store)) as daemon:
        address = daemon.address
        code, made = await _ask(address, "CreateSchedule", pb.ScheduleRequest(schedule_json=json.dumps(HOURLY)), ALICE)
        assert code is grpc.StatusCode.OK, made
        assert made.owner == "client/alice"
        for method, request in (
            ("GetSchedule", pb.ScheduleName(name="hourly")),
            ("PauseSchedule", pb.ScheduleName(name="hourly")),
            ("TriggerSchedule", pb.ScheduleName(name="hourly")),
        ):
            code, details = await _ask(address, method, request, ECHO_ONLY)
            assert code is grpc.StatusCode.NOT_FOUND, (method, code, details)
        code, theirs = await _ask(address, "ListSchedules", empty_pb2.Empty(), ECHO_ONLY)
        assert code is grpc.StatusCode.OK and not theirs.schedules
        code, deleted = await _ask(address, "DeleteSchedule", pb.ScheduleName(name="hourly"), ECHO_ONLY)
        assert code is grpc.StatusCode.OK and not deleted.deleted
        code, everyone = await _ask(address, "ListSchedules", empty_pb2.Empty(), ROOT)
        assert [s.name for s in everyone.schedules] == ["hourly"]
        explode = json.dumps({**HOURLY, "name": "boom", "capability": "explode", "params": {}})
        code, details = await _ask(address, "CreateSchedule", pb.ScheduleRequest(schedule_json=explode), ECHO_ONLY)
        assert code is grpc.StatusCode.PERMISSION_DENIED and "explode" in details
        code, run = await _ask(address, "TriggerSchedule", pb.ScheduleName(name="hourly"), ALICE)
        assert code is grpc.StatusCode.OK
        code, record = await _ask(address, "GetTask", pb.GetTaskRequest(task_id=run.task_id), ALICE)
        assert code is grpc.StatusCode.OK and record.owner == "client/alice"
        # The daemon's limits are its operators' to set.
        limits = pb.Limits(rate_limits=[pb.RateLimitSpec(capability="echo", rate="1/s")])
        code, details = await _ask(address, "SetLimits", limits, ALICE)
        assert code is grpc.StatusCode.PERMISSION_DENIED, details
        code, listed = await _ask(address, "SetLimits", limits, ROOT)
        assert code is grpc.StatusCode.OK and [r.rate for r in listed.rate_limits] == ["1/1s"]
