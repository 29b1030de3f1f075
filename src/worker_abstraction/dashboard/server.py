"""DashboardServer: the dashboard served by uvicorn inside the daemon's own event loop.

uvicorn runs as one task of the loop the orchestrator runs on, so every handler reads the engine's state
directly, with no locks and no copies across threads. It installs no signal handlers (the CLI owns them)
and its socket is bound in `start()`, so a port in use fails the daemon before it serves anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from worker_abstraction.auth import Authenticator
from worker_abstraction.dashboard.access import Gate
from worker_abstraction.dashboard.app import build_app, overview
from worker_abstraction.dashboard.feed import Event, LiveFeed
from worker_abstraction.dashboard.names import WorkerNames
from worker_abstraction.errors import BindError
from worker_abstraction.orchestrator.embedded import AsyncOrchestrator
from worker_abstraction.tls import PEM, TLSConfig

if TYPE_CHECKING:
    from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 100
TICK_SECONDS = 1.0  # how often the overview (workers, queue, charts) is pushed to the pages open


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the daemon's CLI handles SIGINT/SIGTERM and stops this server itself


class DashboardServer:
    """The web dashboard of one orchestrator, served over HTTP (HTTPS with `tls`).

    Args:
        orchestrator: the engine to show; the dashboard follows every task it accepts from `start()` on.
        host: interface to listen on.
        port: port to listen on; 0 picks a free one (see `port` after `start()`).
        auth: the daemon's Authenticator: when given, only operators (by token) may use the dashboard.
        tls: serve HTTPS with `tls.cert` and `tls.key`.
        feed: the live feed (inject one to change its bounds).
    """

    def __init__(
        self,
        orchestrator: AsyncOrchestrator,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auth: Authenticator | None = None,
        tls: TLSConfig | None = None,
        feed: LiveFeed | None = None,
    ) -> None:
        self.orchestrator = orchestrator
        self.host, self.port = host, port
        self.feed = feed or LiveFeed()
        self.names = WorkerNames(orchestrator.engine.directory)
        self.feed.name_of = self.names.name
        self._https = tls is not None and tls.cert is not None
        gate = Gate(auth, secure_cookie=self._https)
        self._ssl_factory: Callable[..., ssl.SSLContext] | None = None
        if tls is not None and tls.cert is not None and tls.key is not None:
            cert, key = tls.cert, tls.key
            self._ssl_factory = lambda *_: _ssl_context(cert, key)
        self._config = uvicorn.Config(
            build_app(orchestrator, self.feed, gate, self.names),
            log_config=None,  # the CLI configured logging; uvicorn must not replace it
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            limit_concurrency=MAX_CONNECTIONS,  # past it uvicorn answers 503: memory stays bounded
            ssl_context_factory=self._ssl_factory,
        )
        self._server = _Uvicorn(self._config)
        self._serving: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    @classmethod
    def beside(
        cls,
        daemon: OrchestratorServer,
        *,
        port: int = 0,
        auth: Authenticator | None = None,
        tls: TLSConfig | None = None,
    ) -> DashboardServer:
        """The dashboard of a daemon, served on its host beside it (started and stopped with it)."""
        dashboard = cls(daemon.orchestrator, host=daemon.host, port=port, auth=auth, tls=tls)
        daemon.beside(dashboard)
        return dashboard

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._https else 'http'}://{host}:{self.port}/"

    async def start(self) -> None:
        """Bind the port and serve.

        Raises:
            BindError: the address cannot be listened on.
        """
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.orchestrator.engine.on_accepted.append(self.feed.accepted)
        directory = self.orchestrator.engine.directory
        directory.on_seen.append(self.names.seen)
        for worker in directory.workers.values():
            self.names.seen(worker)
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]), name="dashboard")
        while not self._server.started:
            if self._serving.done():
                self.orchestrator.engine.on_accepted.remove(self.feed.accepted)
                directory.on_seen.remove(self.names.seen)
                await self._serving  # raises why it could not start
                raise BindError(f"the dashboard at {self.host}:{self.port} stopped as it started")
            await asyncio.sleep(0.01)
        self._ticker = asyncio.create_task(self._tick(), name="dashboard-ticker")
        logger.info("serving the dashboard at %s", self.url)

    async def stop(self) -> None:
        """Close every page's stream and stop serving (open connections get a second to finish)."""
        if self.feed.accepted in self.orchestrator.engine.on_accepted:
            self.orchestrator.engine.on_accepted.remove(self.feed.accepted)
        if self.names.seen in self.orchestrator.engine.directory.on_seen:
            self.orchestrator.engine.directory.on_seen.remove(self.names.seen)
        self.feed.close()
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._serving is not None:
            self._server.should_exit = True
            await asyncio.gather(self._serving, return_exceptions=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            if not self.feed.clients:
                continue  # nobody looks: nothing is computed
            try:
                found = await overview(self.orchestrator, self.feed)
            except Exception:
                logger.exception("reading the dashboard's overview failed")
                continue
            self.feed.publish("overview", Event("overview", found))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise BindError(f"the dashboard cannot listen on {host}:{port}: {error}") from None
    return sock


def _ssl_context(cert: PEM, key: PEM) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as scratch:  # ssl reads PEM only from files; bytes go through one
        context.load_cert_chain(_file(cert, Path(scratch) / "cert.pem"), _file(key, Path(scratch) / "key.pem"))
    return context


def _file(pem: PEM, scratch: Path) -> str:
    if isinstance(pem, bytes):
        scratch.write_bytes(pem)
        scratch.chmod(0o600)
        return str(scratch)
    return str(pem)
