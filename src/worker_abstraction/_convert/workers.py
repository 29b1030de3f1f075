"""Workers, their capabilities, load and health, and timestamps: as the contract carries them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.types import (
    CapabilitySpec,
    LoadReport,
    ParameterSpec,
    WorkerHealth,
    WorkerInfo,
    WorkerState,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(moment: datetime | None = None) -> Timestamp:
    """`moment` (naive: UTC) as a Timestamp; built from integers, several times quicker than FromDatetime."""
    if moment is None:
        return now_timestamp()
    stamp = Timestamp()
    set_timestamp(stamp, moment)
    return stamp


def set_timestamp(field: Timestamp, moment: datetime) -> None:
    """`moment` (naive: UTC) into a Timestamp field of a message, in place (no Timestamp made and copied)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    field.seconds = delta.days * 86_400 + delta.seconds
    field.nanos = delta.microseconds * 1_000


def now_timestamp() -> Timestamp:
    # Built from integers: Timestamp.GetCurrentTime goes through datetime and costs several times more.
    now = time.time_ns()
    return Timestamp(seconds=now // 1_000_000_000, nanos=now % 1_000_000_000)


def from_timestamp(stamp: Timestamp) -> datetime | None:
    """The instant, or None when it is unset (or, from a peer that breaks the contract, not a valid one:
    servers refuse those in requests, see `bounds`, and a reply's is read as no instant at all)."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    try:
        return stamp.ToDatetime(UTC)
    except (ValueError, OverflowError):
        return None


def capability_to_pb(spec: CapabilitySpec) -> pb.ToolCapability:
    return pb.ToolCapability(
        name=spec.name,
        description=spec.description,
        parameters=[
            pb.ToolParameter(
                name=p.name, type=p.type, description=p.description, required=p.required, json_schema=p.json_schema
            )
            for p in spec.parameters
        ],
        max_concurrent_tasks=spec.max_concurrent_tasks,
        required_tags=list(spec.required_tags),
        version=spec.version,
        output_schema_json=spec.output_schema,
        deprecated=spec.deprecated,
        stateless=spec.stateless,
    )


def capability_from_pb(message: pb.ToolCapability) -> CapabilitySpec:
    return CapabilitySpec(
        name=message.name,
        description=message.description,
        parameters=tuple(
            ParameterSpec(
                name=p.name, type=p.type, description=p.description, required=p.required, json_schema=p.json_schema
            )
            for p in message.parameters
        ),
        max_concurrent_tasks=message.max_concurrent_tasks,
        required_tags=tuple(message.required_tags),
        version=message.version,
        output_schema=message.output_schema_json,
        deprecated=message.deprecated,
        stateless=message.stateless,
    )


def load_to_pb(report: LoadReport) -> pb.LoadReport:
    return pb.LoadReport(
        free_slots=report.free_slots,
        queued=report.queued,
        cpu_utilization=report.cpu_utilization,
        mem_utilization=report.mem_utilization,
        utilization=dict(report.utilization),
    )


def load_from_pb(message: pb.LoadReport) -> LoadReport:
    return LoadReport(
        free_slots=message.free_slots,
        queued=message.queued,
        cpu_utilization=message.cpu_utilization,
        mem_utilization=message.mem_utilization,
        utilization=tuple(sorted(message.utilization.items())),
    )


def worker_to_pb(info: WorkerInfo) -> pb.WorkerInfo:
    message = pb.WorkerInfo(
        worker_id=info.worker_id,
        name=info.name,
        version=info.version,
        address=info.address,
        tags=list(info.tags),
        capabilities=[capability_to_pb(c) for c in info.capabilities],
        current_load=info.current_load,
        max_concurrent_tasks=info.max_concurrent_tasks,
        state=int(info.state),  # type: ignore[arg-type]  # WorkerState mirrors the proto enum value for value
        state_reason=info.state_reason,
    )
    if info.load_report is not None:
        message.load_report.CopyFrom(load_to_pb(info.load_report))
    if info.last_heartbeat is not None:
        message.last_heartbeat.CopyFrom(timestamp(info.last_heartbeat))
    return message


def worker_from_pb(message: pb.WorkerInfo) -> WorkerInfo:
    return WorkerInfo(
        worker_id=message.worker_id,
        name=message.name,
        version=message.version,
        address=message.address,
        tags=tuple(message.tags),
        capabilities=tuple(capability_from_pb(c) for c in message.capabilities),
        last_heartbeat=from_timestamp(message.last_heartbeat),
        current_load=message.current_load,
        max_concurrent_tasks=message.max_concurrent_tasks,
        load_report=load_from_pb(message.load_report) if message.HasField("load_report") else None,
        state=_worker_state(message.state),
        state_reason=message.state_reason,
    )


def _worker_state(value: int) -> WorkerState:
    # A seed registry sends nothing (UNSPECIFIED) and a newer one may send a state we do not know yet:
    # both read as ACTIVE, since the registry still lists the worker.
    state = _WORKER_STATES.get(value, WorkerState.ACTIVE)
    return WorkerState.ACTIVE if state is WorkerState.UNSPECIFIED else state


_WORKER_STATES = {int(s): s for s in WorkerState}


def health_to_pb(health: WorkerHealth) -> pb.WorkerHealth:
    return pb.WorkerHealth(
        worker=worker_to_pb(health.worker),
        state=int(health.state),  # type: ignore[arg-type]  # WorkerState mirrors the proto enum
        state_reason=health.state_reason,
        circuit=health.circuit,
        in_flight=health.in_flight,
    )


def health_from_pb(message: pb.WorkerHealth) -> WorkerHealth:
    worker = worker_from_pb(message.worker)
    return WorkerHealth(
        worker=worker,
        state=_worker_state(message.state),
        state_reason=message.state_reason,
        circuit=message.circuit or "closed",
        in_flight=message.in_flight,
    )


def worker_to_bytes(info: WorkerInfo) -> bytes:
    """The worker as the contract's WorkerInfo message, serialised (what shared stores keep)."""
    return worker_to_pb(info).SerializeToString()


def worker_from_bytes(data: bytes) -> WorkerInfo:
    """The inverse of `worker_to_bytes`.

    Raises:
        ValueError: `data` is not a serialised WorkerInfo.
    """
    try:
        return worker_from_pb(pb.WorkerInfo.FromString(data))
    except DecodeError as error:
        raise ValueError(f"not a serialised WorkerInfo: {error}") from error
