"""RegistryServer: the registry as an embeddable asyncio server (what `wa registry` runs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from worker_abstraction import _rpc
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.auth import Authenticator
from worker_abstraction.observability.health import REGISTRY_SERVICE, ServerHealth
from worker_abstraction.observability.metrics import RegistryMetrics
from worker_abstraction.registry.service import Registry
from worker_abstraction.registry.servicer import RegistryServicer
from worker_abstraction.stores.base import SharedWorkerStore, WorkerStore
from worker_abstraction.stores.memory import MemoryWorkerStore
from worker_abstraction.tls import TLSConfig

logger = logging.getLogger(__name__)


class RegistryServer:
    """Serves RegistryService, marks workers whose heartbeats stop SUSPECT, then evicts them. Health checks
    and reflection are served beside it (NOT_SERVING while a shared store does not answer, and from the
    moment it stops).

    Args:
        host: interface to listen on.
        port: port to listen on; 0 picks a free one (see `address` after `start`).
        ttl_seconds: a worker silent for longer than this is evicted.
        suspect_after_seconds: a worker silent for longer than this is listed as SUSPECT until it
            heartbeats again or is evicted; below `ttl_seconds` (default: two thirds of it).
        sweep_interval_seconds: how often silent workers are looked for (default: a quarter of the TTL,
            at most 5 s), so a dead worker leaves within TTL + one sweep.
        store: where workers are kept (default: in memory). A `SharedWorkerStore` (the NATS JetStream
            one, `stores.jetstream.JetStreamWorkerStore`) lets several servers serve one view of the workers;
            the caller opens and closes it.
        tls: serve over TLS with these certificates (mTLS with `require_client_cert`); default plaintext.
        metrics: count heartbeats, registrations and evictions, and report the workers by state when
            scraped (serve them with `metrics.serve()`); default none.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 50051,
        *,
        ttl_seconds: float = 30.0,
        suspect_after_seconds: float | None = None,
        sweep_interval_seconds: float | None = None,
        store: WorkerStore | None = None,
        tls: TLSConfig | None = None,
        auth: Authenticator | None = None,
        metrics: RegistryMetrics | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = Registry(
            store or MemoryWorkerStore(),
            ttl_seconds=ttl_seconds,
            suspect_after_seconds=suspect_after_seconds,
            metrics=metrics,
        )
        self._metrics = metrics
        self.tls = tls
        self.sweep_interval_seconds = sweep_interval_seconds or min(ttl_seconds / 4, 5.0)
        self._server = _rpc.new_server(auth)
        self._checks_tokens = auth is not None and auth.checks_tokens
        self._health = ServerHealth(self._server, (REGISTRY_SERVICE,))
        self.registry.availability.listen(self._health.set_all_soon)
        if metrics is not None and isinstance(self.registry.store, SharedWorkerStore):
            metrics.watch_store(self.registry.availability)
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        pb_grpc.add_RegistryServiceServicer_to_server(RegistryServicer(self.registry), self._server)
        self.port = _rpc.bind(self._server, self.host, self.port, self.tls, tokens=self._checks_tokens)
        await self._health.set_all(self.registry.availability.available)
        await self._server.start()
        self._sweeper = asyncio.create_task(
            self.registry.sweep_forever(self.sweep_interval_seconds), name="registry-sweeper"
        )
        if self._metrics is not None:
            self._metrics.watch(self.registry.count_by_state)
        logger.info(
            "registry listening on %s%s (ttl %gs, suspect after %gs)",
            self.address,
            _rpc.security_of(self.tls),
            self.registry.ttl_seconds,
            self.registry.suspect_after_seconds,
        )

    async def stop(self, grace_seconds: float | None = 1.0) -> None:
        await self._health.shutdown()
        if self._metrics is not None:
            self._metrics.unwatch()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self.registry.events.close()
        await self._server.stop(grace_seconds)

    async def wait_for_termination(self) -> None:
        # Shielded: canceling this wait must not cancel gRPC's own shutdown future, which stop() awaits.
        await asyncio.shield(self._server.wait_for_termination())

    async def __aenter__(self) -> RegistryServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
