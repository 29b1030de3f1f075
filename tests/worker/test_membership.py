"""A worker keeps itself registered: heartbeats, re-registration, retries, clean leave."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ToolWorker, eventually
from worker_abstraction import BindError, InvalidWorkerInfoError, RegistryClient, RegistryServer
from worker_abstraction.errors import RegistryUnavailableError
from worker_abstraction.registry.events import WorkerEventType


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_worker_registers_with_its_real_address_and_capabilities(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    worker = await start_worker()
    client = RegistryClient(registry.address)
    try:
        info = await client.get_worker(worker.worker_id)
    finally:
        await client.aclose()
    assert info.address == worker.address and worker.port != 0
    echo = next(c for c in info.capabilities if c.name == "echo")
    assert echo.description.startswith("Repeat a text.")
    assert [(p.name, p.type, p.required, p.description) for p in echo.parameters] == [
        ("text", "string", True, "what to repeat."),
        ("times", "integer", False, "how often."),
    ]


async def test_heartbeats_carry_the_current_load(registry: RegistryServer, start_worker: Callable[..., Any]) -> None:
    worker = await start_worker()
    client = RegistryClient(registry.address)
    events = client.watch()
    try:
        async for event in events:
            if event.type is WorkerEventType.SYNCED:
                break
        worker._servicer.tasks.active = 2  # as if two tasks were running
        async for event in events:
            if event.type is WorkerEventType.UPDATED and event.worker and event.worker.current_load == 2:
                break
    finally:
        worker._servicer.tasks.active = 0
        await events.aclose()
        await client.aclose()


async def test_worker_registers_again_after_the_registry_restarts(start_worker: Callable[..., Any]) -> None:
    port = free_port()
    first = RegistryServer(port=port, ttl_seconds=1.0)
    await first.start()
    worker = await start_worker(registry=first.address)
    await worker.wait_registered()
    await first.stop(None)
    second = RegistryServer(port=port, ttl_seconds=1.0)
    await second.start()
    try:
        client = RegistryClient(second.address)

        async def listed() -> bool:
            try:
                return worker.worker_id in [w.worker_id for w in await client.list_workers()]
            except RegistryUnavailableError:  # a call racing the port's handover (seen once: broken pipe)
                return False

        try:
            await eventually(listed, what="worker re-registered with the new registry")
        finally:
            await client.aclose()
    finally:
        await second.stop(None)


async def test_worker_retries_until_the_registry_comes_up(start_worker: Callable[..., Any]) -> None:
    port = free_port()
    worker = await start_worker(registry=f"127.0.0.1:{port}")
    assert not worker._membership.registered.is_set()
    registry = RegistryServer(port=port, ttl_seconds=1.0)
    await registry.start()
    try:
        await worker.wait_registered(timeout_seconds=5)
    finally:
        await registry.stop(None)


async def test_stopped_worker_deregisters(registry: RegistryServer) -> None:
    worker = ToolWorker(registry.address, heartbeat_interval_seconds=0.1)
    await worker.start()
    await worker.stop(grace_seconds=0.5)
    client = RegistryClient(registry.address)
    try:
        assert await client.list_workers() == []
    finally:
        await client.aclose()


async def test_registration_the_registry_refuses_fails_start(registry: RegistryServer) -> None:
    worker = ToolWorker(registry.address, name=" ")
    with pytest.raises(InvalidWorkerInfoError):
        await worker.start()


async def test_busy_port_is_a_named_error(registry: RegistryServer) -> None:
    taken = RegistryServer(port=0)
    await taken.start()
    try:
        with pytest.raises(BindError):
            await ToolWorker(None, port=taken.port).start()
    finally:
        await taken.stop(None)
