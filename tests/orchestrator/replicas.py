"""Orchestrators sharing tasks in a PartitionedHome on one NATS, each on a connection of its own as separate
daemons are: `async with replicas(registry, url, partitions=8) as replica: a, home_a = await replica("a")`.

`replica(name, **options)` opens the home with the defaults given to `replicas` and the options
`PartitionedHome.open` takes (lease_seconds, silence_seconds, max_takes, store, ...), passes every other option
to `AsyncOrchestrator` (retry_policy, max_queued, ...), reaches NATS at `url` if given (a proxy, say), and
lets `before_start` see the home before it takes partitions. Every one started is closed at the end.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from worker_abstraction import AsyncOrchestrator
from worker_abstraction.orchestrator.homes.nats.partitioned import PartitionedHome
from worker_abstraction.stores.jetstream import NatsOptions

Replica = Callable[..., Awaitable[tuple[AsyncOrchestrator, PartitionedHome]]]
_HOME_OPTIONS = frozenset(inspect.signature(PartitionedHome.open).parameters) - {"cls", "nats", "replica"}


@asynccontextmanager
async def replicas(registry: str, url: str, **defaults: Any) -> AsyncIterator[Replica]:
    started: list[AsyncOrchestrator] = []

    async def start(
        name: str,
        *,
        url: str = url,
        before_start: Callable[[PartitionedHome], None] | None = None,
        **options: Any,
    ) -> tuple[AsyncOrchestrator, PartitionedHome]:
        opened = {**defaults, **{key: value for key, value in options.items() if key in _HOME_OPTIONS}}
        home = await PartitionedHome.open(NatsOptions((url,)), replica=name, **opened)
        if before_start is not None:
            before_start(home)
        rest = {key: value for key, value in options.items() if key not in _HOME_OPTIONS}
        orchestrator = AsyncOrchestrator(registry, home=home, **rest)
        await orchestrator.start()
        started.append(orchestrator)
        return orchestrator, home

    try:
        yield start
    finally:
        for orchestrator in started:
            await orchestrator.aclose()
