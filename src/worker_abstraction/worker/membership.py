"""A worker's membership in the registry: register, heartbeat, re-register, retry, leave."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from worker_abstraction.errors import InvalidWorkerInfoError, RegistryUnavailableError
from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.types import LoadReport, WorkerInfo

logger = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 5.0
_FIRST_RETRY_SECONDS = 0.1


class Membership:
    """Keeps one worker registered for as long as it runs.

    The heartbeat interval is the one given, else the registry's advice, else 5 s. While the registry is
    unreachable the worker retries with jittered exponential backoff capped at one heartbeat interval, so it
    reappears within one interval of the registry coming back; a heartbeat answered "unknown worker"
    (registry restarted, or the worker was evicted) triggers an immediate re-registration.
    """

    def __init__(
        self,
        client: RegistryClient,
        describe: Callable[[], WorkerInfo],
        load: Callable[[], LoadReport],
        *,
        heartbeat_interval_seconds: float | None = None,
    ) -> None:
        self._client = client
        self._describe = describe
        self._load = load
        self._fixed_interval = heartbeat_interval_seconds
        self.interval_seconds = heartbeat_interval_seconds or DEFAULT_HEARTBEAT_INTERVAL_SECONDS
        self.registered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Try to register once, then keep the membership alive in the background.

        Raises:
            InvalidWorkerInfoError: the registry refused the worker's description (a bug to fix, not to retry).
        """
        try:
            await self._register()
        except RegistryUnavailableError as error:
            logger.warning("registry unreachable, will keep trying: %s", error)
        self._task = asyncio.create_task(self._run(), name="worker-membership")

    async def stop(self, *, deregister: bool) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if deregister and self.registered.is_set():
            try:
                await self._client.deregister(self._describe().worker_id)
            except RegistryUnavailableError as error:
                logger.warning("could not deregister (the registry will evict this worker): %s", error)
            self.registered.clear()

    async def refresh(self) -> None:
        """Register again now, with what the worker says of itself now (its capabilities changed); while the
        registry is unreachable, the membership keeps trying in the background as it does anyway."""
        try:
            await self._register()
        except RegistryUnavailableError as error:
            logger.warning("registry unreachable, will keep trying: %s", error)
            self.registered.clear()
            self._wake.set()

    def nudge(self) -> None:
        """Send the next heartbeat now (e.g. the load changed a lot)."""
        self._wake.set()

    async def _register(self) -> None:
        registration = await self._client.register(self._describe())
        if self._fixed_interval is None and registration.heartbeat_interval_seconds:
            self.interval_seconds = registration.heartbeat_interval_seconds
        if not self.registered.is_set():
            logger.info("registered with registry %s as %s", self._client.address, registration.worker_id)
        self.registered.set()

    async def _run(self) -> None:
        backoff = _FIRST_RETRY_SECONDS
        while True:
            try:
                if self.registered.is_set():
                    await self._pause(self.interval_seconds)
                    report = self._load()
                    info = self._describe()
                    if not await self._client.heartbeat(info.worker_id, info.current_load, report):
                        logger.info("registry does not know this worker any more; registering again")
                        self.registered.clear()
                if not self.registered.is_set():
                    await self._register()
                backoff = _FIRST_RETRY_SECONDS
            except RegistryUnavailableError as error:
                logger.debug("registry unreachable: %s", error)
                self.registered.clear()
                await self._pause(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self.interval_seconds)
            except InvalidWorkerInfoError as error:
                logger.error("registry refuses this worker: %s", error)
                await self._pause(self.interval_seconds)
            except Exception:  # membership must outlive any surprise, or the worker silently drops out
                logger.exception("heartbeat failed unexpectedly; retrying")
                self.registered.clear()
                await self._pause(self.interval_seconds)

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
