"""The registry's sweeper stops when asked to, even when the shared store's call swallowed the cancel (nats-py
can turn a cancel into a timeout, which the store reports as unavailable): a registry on NATS once took more
than 15 s to stop, its sweeper sweeping on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from worker_abstraction.errors import StoreUnavailableError
from worker_abstraction.registry.service import Registry
from worker_abstraction.stores.base import SharedWorkerStore, WorkerChange
from worker_abstraction.stores.memory import MemoryWorkerStore

pytestmark = pytest.mark.timeout(10)


class SwallowingStore(MemoryWorkerStore):
    """A shared store whose probe never answers, and answers a cancel as an outage."""

    def __init__(self) -> None:
        super().__init__()
        self.probing = asyncio.Event()
        self.swallowing = True

    def listen(self, listener: Callable[[WorkerChange], None]) -> None:
        return None

    async def probe(self) -> None:
        self.probing.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if not self.swallowing:
                raise
            raise StoreUnavailableError("the store did not answer: TimeoutError()") from None


async def test_a_sweeper_whose_store_swallowed_the_cancel_still_stops() -> None:
    store = SwallowingStore()
    assert isinstance(store, SharedWorkerStore)
    registry = Registry(store, ttl_seconds=1.0)
    sweeper = asyncio.create_task(registry.sweep_forever(0.01))
    await store.probing.wait()
    sweeper.cancel()
    await asyncio.wait({sweeper}, timeout=2)  # (not `await sweeper`: that would cancel it again)
    stopped = sweeper.cancelled()
    store.swallowing = False  # (should it sweep on, it is stopped for good here: a failure, not a hang)
    sweeper.cancel()
    await asyncio.gather(sweeper, return_exceptions=True)
    assert stopped, "the sweeper swept on after it was cancelled"
