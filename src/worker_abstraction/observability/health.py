"""Standard gRPC health checking and server reflection, as every server of this package offers them.

`ServerHealth` registers two services beside a server's own: `grpc.health.v1.Health` (grpc's own
asyncio servicer), which load balancers and `grpc_health_probe` ask whether the server, or one of its
services, is serving; and server reflection (`grpc.reflection.v1alpha.ServerReflection`), through which
`grpcurl` lists the services and describes their methods and messages without a copy of `worker.proto`.

Each server reports one status for itself as a whole (the service name "") and one for each service it
serves: SERVING once started, NOT_SERVING from the moment it starts to drain or stop, for good. The
orchestrator daemon also answers NOT_SERVING while its task store cannot write, and SERVING again once it
can; a daemon or a registry on NATS, while NATS does not answer (see `stores.availability`). The
`Authenticator` lets both services through without credentials (see `auth.OPEN_SERVICES`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from worker_abstraction._proto import worker_pb2 as pb

HEALTH_SERVICE: str = health.SERVICE_NAME  # grpc.health.v1.Health
REFLECTION_SERVICE: str = reflection.SERVICE_NAME  # grpc.reflection.v1alpha.ServerReflection
OVERALL = ""  # the name a health check gives for the server as a whole
# grpc's asyncio health servicer (`health.aio.HealthServicer`); grpc-stubs predates it, so it is untyped.
_AsyncHealthServicer: Any = getattr(health, "aio").HealthServicer  # noqa: B009

# The services of worker.proto, by the full names health checks and reflection use.
REGISTRY_SERVICE: str = pb.DESCRIPTOR.services_by_name["RegistryService"].full_name
WORKER_SERVICE: str = pb.DESCRIPTOR.services_by_name["WorkerService"].full_name
ORCHESTRATOR_SERVICE: str = pb.DESCRIPTOR.services_by_name["OrchestratorService"].full_name


class ServerHealth:
    """The health and reflection services of one server, and the statuses it reports.

    Registering happens when it is made, before the server starts. Until `set_all(True)` the server as a
    whole reports SERVING (grpc's default) and its services are unknown (NOT_FOUND), so a server calls it
    just before it starts listening; `shutdown()` is for when it starts to drain.

    Args:
        server: the server, not started yet.
        services: the full names of the services it serves (health and reflection are added to these).
    """

    def __init__(self, server: aio.Server, services: Iterable[str]) -> None:
        self.services = tuple(services)
        self._servicer = _AsyncHealthServicer()
        self._pending: set[asyncio.Task[None]] = set()
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        reflection.enable_server_reflection((*self.services, HEALTH_SERVICE, REFLECTION_SERVICE), server)

    async def set_serving(self, service: str, serving: bool) -> None:
        """Report `service` (or the server as a whole, `OVERALL`) as SERVING or NOT_SERVING; ignored once
        the server has begun to shut down.

        Raises:
            ValueError: the server does not serve `service`.
        """
        if service != OVERALL and service not in self.services:
            raise ValueError(f"this server does not serve {service!r} (it serves {', '.join(self.services)})")
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        await self._servicer.set(service, status)

    async def set_all(self, serving: bool) -> None:
        """Report the server as a whole and every one of its services as SERVING or NOT_SERVING."""
        for service in (OVERALL, *self.services):
            await self.set_serving(service, serving)

    def set_all_soon(self, serving: bool) -> None:
        """`set_all`, from code on the event loop that cannot wait for it (a store's callback). Changes made
        so are applied in the order they were asked for."""
        change = asyncio.get_running_loop().create_task(self.set_all(serving), name="health-status")
        self._pending.add(change)
        change.add_done_callback(self._pending.discard)

    async def shutdown(self) -> None:
        """Report NOT_SERVING for everything, for good: what a draining or stopping server says first, so
        callers and load balancers turn away before it closes its port."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self._servicer.enter_graceful_shutdown()
