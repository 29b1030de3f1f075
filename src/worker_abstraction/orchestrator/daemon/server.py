"""OrchestratorServer: an AsyncOrchestrator serving OrchestratorService in this process (`wa orchestrator`)."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from worker_abstraction import _rpc
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.auth import Authenticator
from worker_abstraction.observability.health import ORCHESTRATOR_SERVICE, ServerHealth
from worker_abstraction.observability.metrics import OrchestratorMetrics
from worker_abstraction.orchestrator.daemon.servicer import OrchestratorServicer
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator
from worker_abstraction.stores.sqlite import SqliteTaskStore
from worker_abstraction.tls import TLSConfig

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.core.home import TaskHome

logger = logging.getLogger(__name__)


class Companion(Protocol):
    """Something served beside the daemon (see `OrchestratorServer.beside`)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class OrchestratorServer:
    """An AsyncOrchestrator serving OrchestratorService, with health checks and reflection beside it: NOT_SERVING
    while its task store cannot write (or, shared, while NATS does not answer), and from the moment it stops.

    What else a deployment serves beside it (the web dashboard: `worker_abstraction.dashboard`) is handed
    to `beside`: started once the daemon serves, stopped before it stops.

    Args:
        registry: host:port of the registry.
        host: interface to listen on.
        port: port to listen on; 0 picks a free one.
        store_path: SQLite file keeping accepted tasks across restarts (None: memory only). One store
            serves one daemon: a second one on the same file fails to start with StoreInUseError.
        tls: serve over TLS with `tls.cert` (mTLS with `require_client_cert`), and reach the registry and
            the workers over TLS with the same certificates; default plaintext.
        metrics: the orchestrator's metrics, the task store's commits among them (serve them with
            `metrics.serve()`); default none.
        home: where tasks live instead of `store_path` (e.g. `homes.nats.partitioned.PartitionedHome`,
            opened: tasks shared with other daemons on NATS JetStream; closed with the server).
        options: passed to AsyncOrchestrator (queue bounds, aging, ...).
    """

    def __init__(
        self,
        registry: str,
        host: str = "127.0.0.1",
        port: int = 50052,
        *,
        store_path: str | None = None,
        tls: TLSConfig | None = None,
        auth: Authenticator | None = None,
        metrics: OrchestratorMetrics | None = None,
        home: TaskHome | None = None,
        **options: Any,
    ) -> None:
        self.host, self.port = host, port
        self.tls = tls
        on_commit = metrics.store_written if metrics is not None else None
        self._store = SqliteTaskStore(store_path, on_commit=on_commit) if store_path else None
        self.orchestrator = AsyncOrchestrator(
            registry, task_store=self._store, tls=tls, metrics=metrics, home=home, **options
        )
        self._server = _rpc.new_server(auth)
        self._checks_tokens = auth is not None and auth.checks_tokens
        self._health = ServerHealth(self._server, (ORCHESTRATOR_SERVICE,))
        if self._store is not None:
            self._store.on_writable = self._health.set_all_soon
        self._availability = home.availability if home is not None else None
        if self._availability is not None:
            self._availability.listen(self._health.set_all_soon)
            if metrics is not None:
                metrics.watch_store(self._availability)
        self._beside: list[Companion] = []
        self._started = False

    def beside(self, companion: Companion) -> None:
        """Serve `companion` beside the daemon (before `start`): started once it serves, stopped first."""
        self._beside.append(companion)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Open the store, resume its tasks, and serve.

        Raises:
            StoreInUseError: another daemon holds the store.
            BindError: the address cannot be listened on.
        """
        if self._store is not None:
            await self._store.open()
        try:
            await self.orchestrator.start()
            pb_grpc.add_OrchestratorServiceServicer_to_server(OrchestratorServicer(self.orchestrator), self._server)
            self.port = _rpc.bind(self._server, self.host, self.port, self.tls, tokens=self._checks_tokens)
            await self._health.set_all(self._serving())
            await self._server.start()
            for companion in self._beside:
                await companion.start()
        except BaseException:
            for companion in self._beside:
                await companion.stop()
            await self._server.stop(None)
            await self.orchestrator.aclose()
            if self._store is not None:
                await self._store.close()
            raise
        self._started = True
        logger.info(
            "orchestrator listening on %s%s (registry %s)",
            self.address,
            _rpc.security_of(self.tls),
            self.orchestrator.registry,
        )

    def _serving(self) -> bool:
        """Whether its store can take what it accepts (the SQLite file writes; NATS answers)."""
        store, availability = self._store, self._availability
        return (store is None or store.writable) and (availability is None or availability.available)

    async def stop(self, grace_seconds: float | None = 1.0) -> None:
        await self._health.shutdown()
        for companion in reversed(self._beside):
            await companion.stop()
        await self._server.stop(grace_seconds)
        await self.orchestrator.aclose()
        if self._store is not None:
            await self._store.close()

    async def wait_for_termination(self) -> None:
        # Shielded: canceling this wait must not cancel gRPC's own shutdown future, which stop() awaits.
        await asyncio.shield(self._server.wait_for_termination())

    async def __aenter__(self) -> OrchestratorServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
