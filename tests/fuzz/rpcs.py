"""Every RPC of worker.proto, taken from the generated descriptor and checked against the generated stubs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from worker_abstraction._proto import worker_pb2, worker_pb2_grpc

SERVICES = ("RegistryService", "WorkerService", "OrchestratorService")
# Streams that legitimately stay open after their first message (a watch, a session, a task channel): for
# them the harness reads what arrives within the deadline and then cancels; reaching the deadline is no hang.
OPEN_ENDED = {
    "RegistryService/WatchWorkers",
    "WorkerService/StreamTaskStatus",
    "WorkerService/OpenTaskChannel",
    "OrchestratorService/WatchTask",
    "OrchestratorService/OpenSession",
    "OrchestratorService/WatchWorkflow",
}


@dataclass(frozen=True)
class Rpc:
    service: str
    method: str
    request_type: type[Message]
    response_type: type[Message]
    client_streaming: bool
    server_streaming: bool

    @property
    def name(self) -> str:
        return f"{self.service}/{self.method}"

    @property
    def path(self) -> str:
        return f"/worker_abstraction.{self.service}/{self.method}"

    @property
    def open_ended(self) -> bool:
        return self.name in OPEN_ENDED


def _rpc(service: str, method: MethodDescriptor) -> Rpc:
    return Rpc(
        service,
        method.name,
        message_factory.GetMessageClass(method.input_type),
        message_factory.GetMessageClass(method.output_type),
        method.client_streaming,
        method.server_streaming,
    )


def all_rpcs() -> list[Rpc]:
    """Every method of every service the package's descriptor declares."""
    services = worker_pb2.DESCRIPTOR.services_by_name
    assert set(services) == set(SERVICES), (
        f"worker.proto declares services {sorted(services)}; the harness knows {SERVICES}"
    )
    return [_rpc(name, method) for name in SERVICES for method in services[name].methods]


def stub_paths() -> set[str]:
    """The method paths the generated stubs call, read from worker_pb2_grpc's source."""
    source = Path(worker_pb2_grpc.__file__).read_text()
    return set(re.findall(r"'(/worker_abstraction\.\w+/\w+)'", source))
