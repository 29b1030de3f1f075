"""BaseWorker: subclass it, mark methods with @capability, start it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar

from worker_abstraction import _rpc
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.auth import Authenticator
from worker_abstraction.capability import CapabilityDef, definition_of
from worker_abstraction.errors import InvalidCapabilityError
from worker_abstraction.observability.health import WORKER_SERVICE, ServerHealth
from worker_abstraction.observability.metrics import WorkerMetrics
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.tls import TLSConfig
from worker_abstraction.types import CapabilitySpec, LoadReport, WorkerInfo
from worker_abstraction.worker.load import LoadMeter
from worker_abstraction.worker.membership import Membership
from worker_abstraction.worker.servicer import WorkerServicer

logger = logging.getLogger(__name__)


ASYNC_SLOTS = 100  # a worker's slots when every capability is async (Temporal's and Hatchet's default)


def default_threads() -> int:
    """Threads for plain capabilities: Python's own choice for a thread pool (CPU count + 4, at most 32)."""
    return min(32, (os.cpu_count() or 1) + 4)


def default_slots(capabilities: Iterable[CapabilityDef], threads: int) -> int:
    """A worker's slots when none are given: one per thread when a plain `def` capability needs a thread
    (so none waits for one inside the worker), otherwise `ASYNC_SLOTS`."""
    return threads if any(not d.is_async for d in capabilities) else ASYNC_SLOTS


class BaseWorker:
    """A worker process's capabilities, served over WorkerService and kept registered.

    Subclass it and mark methods with `@capability`; `start()` serves, registers and heartbeats,
    `stop()` drains and leaves. Health checks and reflection are served beside WorkerService; health turns
    NOT_SERVING as soon as `stop()` begins to drain.

    Args:
        registry: host:port of the registry, or several comma-separated (replicas, tried in order); None
            serves without registering.
        host: interface to listen on.
        port: port to listen on; 0 picks a free one (the advertised address is the real one).
        advertise_host: host put in the advertised address when it differs from `host`
            (e.g. listening on 0.0.0.0); defaults to `host`, or this machine's name for wildcard hosts.
        name: friendly name (default: the class name).
        worker_id: stable id (default: a new random id per process).
        version: version string (default: the class's `version` attribute).
        tags: labels for filtering, e.g. ("gpu",).
        heartbeat_interval_seconds: fixed heartbeat interval (default: the registry's advice).
        max_concurrent_tasks: task slots; past them new tasks are refused as RESOURCE_EXHAUSTED, and the
            orchestrator never sends more, so the rest wait in its queue (where `wa queue` shows them).
            Default: the class's `max_concurrent_tasks`, else `default_slots(...)`: as many as threads
            when the worker has a plain `def` capability (each runs on a thread of its own), otherwise
            `ASYNC_SLOTS` (100, as Temporal's and Hatchet's workers). 0 means no limit.
        cancel_grace_seconds: how long a handler asked to cancel may clean up before it is stopped.
        max_threads: threads for plain (non-async) capabilities (default `default_threads()`: Python's own
            choice for a thread pool, the CPU count + 4, at most 32).
        tls: serve over TLS with `tls.cert` (mTLS with `require_client_cert`) and reach the registry over
            TLS, trusting `tls.ca` and presenting the same certificate; default plaintext.
        metrics: count this worker's tasks and their durations, and report the tasks running (serve them
            with `metrics.serve()`); default none.
    """

    version: ClassVar[str] = "0.1.0"
    max_concurrent_tasks: ClassVar[int | None] = None  # None: `default_slots`; 0: no limit
    capabilities: ClassVar[dict[str, CapabilityDef]] = {}
    stateless: ClassVar[bool] = False  # True: every capability keeps no state between tasks (see `sessions`)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, CapabilityDef] = {}
        for klass in reversed(cls.__mro__):
            for attribute, member in vars(klass).items():
                definition = definition_of(member)
                if definition is None:
                    continue
                clash = found.get(definition.spec.name)
                if clash is not None and clash.function.__name__ != attribute:
                    raise InvalidCapabilityError(
                        f"{cls.__qualname__}: two methods declare capability {definition.spec.name!r}"
                    )
                found[definition.spec.name] = definition
        cls.capabilities = found

    def __init__(
        self,
        registry: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        advertise_host: str | None = None,
        name: str | None = None,
        worker_id: str | None = None,
        version: str | None = None,
        tags: tuple[str, ...] | list[str] = (),
        heartbeat_interval_seconds: float | None = None,
        max_concurrent_tasks: int | None = None,
        cancel_grace_seconds: float = 5.0,
        max_threads: int | None = None,
        tls: TLSConfig | None = None,
        auth: Authenticator | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.registry_address = registry
        self._metrics = metrics
        self.host = host
        self.port = port
        self.advertise_host = advertise_host or (socket.gethostname() if host in ("0.0.0.0", "::", "[::]") else host)
        self.name = name or type(self).__name__
        self.worker_id = worker_id or uuid.uuid4().hex
        self.worker_version = version or self.version
        self.tags = tuple(tags)
        self.tls = tls
        threads = default_threads() if max_threads is None else max_threads
        if threads < 1:
            raise ValueError(f"max_threads must be >= 1, got {threads}")
        slots = type(self).max_concurrent_tasks if max_concurrent_tasks is None else max_concurrent_tasks
        self.slots = default_slots(self.capabilities.values(), threads) if slots is None else slots
        if self.slots < 0:
            raise ValueError(f"max_concurrent_tasks must be >= 0, got {self.slots}")
        plain = sorted(name for name, d in self.capabilities.items() if not d.is_async)
        if plain and (self.slots == 0 or self.slots > threads):
            logger.warning(
                "%s: %d slots but %d threads for its plain capabilities (%s): a task may wait inside the "
                "worker for a thread; keep max_concurrent_tasks <= max_threads",
                type(self).__name__, self.slots, threads, ", ".join(plain[:5]),
            )  # fmt: skip
        self._definitions: dict[str, CapabilityDef] = dict(self.capabilities)  # what it serves (set_capabilities)
        self._load_meter = LoadMeter()
        self._cancel_grace = cancel_grace_seconds
        self._heartbeat_interval = heartbeat_interval_seconds
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"{self.name}-task")
        self._auth = auth
        self._server = _rpc.new_server(auth)
        self._health = ServerHealth(self._server, (WORKER_SERVICE,))
        self._servicer: WorkerServicer | None = None
        self._membership: Membership | None = None
        self._registry_client: RegistryClient | None = None
        self._stopped = asyncio.Event()

    @property
    def address(self) -> str:
        """The advertised host:port (the real port once started)."""
        return f"{self.advertise_host}:{self.port}"

    @property
    def load(self) -> int:
        """Tasks accepted and not finished yet."""
        return self._servicer.load if self._servicer else 0

    @property
    def tasks_received(self) -> int:
        """Tasks offered to this worker so far, accepted or refused."""
        return self._servicer.received if self._servicer else 0

    @property
    def peak_load(self) -> int:
        """The most tasks this worker has run at once."""
        return self._servicer.tasks.peak if self._servicer else 0

    def load_report(self) -> LoadReport:
        """The load report sent with the next heartbeat."""
        return self._load_meter.report(active=self.load, max_concurrent_tasks=self.slots)

    def info(self) -> WorkerInfo:
        """How this worker describes itself to the registry."""
        return WorkerInfo(
            worker_id=self.worker_id,
            name=self.name,
            address=self.address,
            version=self.worker_version,
            tags=self.tags,
            capabilities=tuple(
                replace(d.spec, stateless=True) if self.stateless else d.spec for d in self._definitions.values()
            ),
            current_load=self.load,
            max_concurrent_tasks=self.slots,
        )

    @classmethod
    def capability_specs(cls) -> list[CapabilitySpec]:
        return [definition.spec for definition in cls.capabilities.values()]

    async def start(self) -> None:
        """Serve WorkerService and register with the registry (retrying in the background if it is down).

        Raises:
            InvalidWorkerInfoError: the registry refused this worker's description.
        """
        if not self._definitions:
            logger.warning("%s declares no @capability methods", type(self).__name__)
        self._servicer = WorkerServicer(
            self,
            self._definitions,
            self.info,
            self._executor,
            max_concurrent_tasks=self.slots,
            cancel_grace_seconds=self._cancel_grace,
            metrics=self._metrics,
        )
        if self._metrics is not None:
            self._metrics.watch_running(lambda: self.load)
        pb_grpc.add_WorkerServiceServicer_to_server(self._servicer, self._server)
        self.port = _rpc.bind(
            self._server, self.host, self.port, self.tls, tokens=self._auth is not None and self._auth.checks_tokens
        )
        if self._auth is not None:  # callers sign for the address we register, which is what they dial
            self._auth.accept_audience(self.address)
        await self._health.set_all(True)
        await self._server.start()
        logger.info(
            "worker %s (%s) serving on %s%s", self.worker_id, self.name, self.address, _rpc.security_of(self.tls)
        )
        if self.registry_address:
            self._registry_client = RegistryClient(self.registry_address, tls=self.tls)
            self._membership = Membership(
                self._registry_client,
                self.info,
                self.load_report,
                heartbeat_interval_seconds=self._heartbeat_interval,
            )
            try:
                await self._membership.start()
            except BaseException:
                await self._server.stop(None)
                raise

    async def set_capabilities(self, definitions: Iterable[CapabilityDef]) -> None:
        """Serve these capabilities from now on, instead of the ones served so far (tools found at run time:
        see `capability.schema_capability`); once started, the worker registers again at once, so
        orchestrators see the change. Tasks running keep running.

        Raises:
            InvalidCapabilityError: two definitions of one name.
            InvalidWorkerInfoError: the registry refused the new description.
        """
        found: dict[str, CapabilityDef] = {}
        for definition in definitions:
            if definition.spec.name in found:
                raise InvalidCapabilityError(f"{self.name}: two definitions of capability {definition.spec.name!r}")
            found[definition.spec.name] = definition
        self._definitions.clear()  # (in place: the servicer serves from this very mapping)
        self._definitions.update(found)
        if self._membership is not None:
            await self._membership.refresh()

    @property
    def served(self) -> Mapping[str, CapabilityDef]:
        """The capabilities this worker serves now, by name."""
        return MappingProxyType(self._definitions)

    async def wait_registered(self, timeout_seconds: float = 10.0) -> None:
        """Wait until the registry has accepted this worker."""
        if self._membership is None:
            raise RuntimeError("worker has no registry or is not started")
        async with asyncio.timeout(timeout_seconds):
            await self._membership.registered.wait()

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Report NOT_SERVING, stop accepting tasks, let running ones finish within the grace period,
        deregister, stop serving.

        Tasks still running after the grace period are canceled (they end CANCELED).
        """
        if self._stopped.is_set():
            return
        await self._health.shutdown()  # load balancers and watchers turn away while it drains
        servicer = self._servicer
        if servicer is not None:
            servicer.accepting = False
            try:
                async with asyncio.timeout(grace_seconds):
                    await servicer.idle.wait()
            except TimeoutError:
                logger.warning("grace period over; canceling %d running task(s)", servicer.load)
                await servicer.cancel_running()
        if self._membership is not None:
            await self._membership.stop(deregister=True)
        if self._registry_client is not None:
            await self._registry_client.aclose()
        # Open status streams have delivered their terminal update by now; give them a moment to flush.
        await self._server.stop(1.0)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._stopped.set()
        logger.info("worker %s stopped", self.worker_id)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def __aenter__(self) -> BaseWorker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
