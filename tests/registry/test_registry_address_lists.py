"""A client given several registry addresses uses the first that answers."""

from __future__ import annotations

import socket

import pytest

from worker_abstraction import RegistryClient, RegistryServer
from worker_abstraction.types import WorkerInfo


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_first_address_is_skipped(registry: RegistryServer) -> None:
    client = RegistryClient(f"127.0.0.1:{closed_port()},localhost:{registry.port}")
    try:
        await client.register(WorkerInfo(worker_id="w1", name="echo", address="127.0.0.1:7001"))
        assert [w.worker_id for w in await client.list_workers()] == ["w1"]
    finally:
        await client.aclose()


@pytest.mark.parametrize("address", ["127.0.0.1:1,nonsense", "127.0.0.1:1,host.invalid:2"])
def test_a_malformed_address_list_is_refused_when_the_client_is_made(address: str) -> None:
    with pytest.raises(ValueError, match=r"nonsense|host\.invalid"):
        RegistryClient(address)
