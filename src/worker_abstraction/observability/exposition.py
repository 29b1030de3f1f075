"""How metrics leave the process: an HTTP(S) server on a thread (see `http.py`), and state read on its event loop
at scrape time.

The endpoint serves from threads of its own. Counters and histograms are safe to read from there (each
holds a lock), but the state behind a gauge such as the queue depth lives on an asyncio loop and changes with
every turn of it: `LoopReader` hands the read to that loop and waits for the answer, so a scrape sees one
consistent view and the loop never shares its structures with another thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry

from worker_abstraction.auth import Authenticator
from worker_abstraction.errors import BindError
from worker_abstraction.observability import http
from worker_abstraction.tls import TLSConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A scrape waits this long for the loop to answer; a loop that does not is left out of that scrape.
READ_TIMEOUT_SECONDS = 5.0
_STOP_SECONDS = 5.0


class LoopReader(Generic[T]):
    """Reads a snapshot of some loop's state from any thread; nothing until `bind`, nothing after `unbind`."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._source: tuple[asyncio.AbstractEventLoop, Callable[[], Coroutine[Any, Any, T]]] | None = None

    def bind(self, read: Callable[[], Coroutine[Any, Any, T]]) -> None:
        """Read with `read()`, run on the calling coroutine's loop (a later bind replaces this one)."""
        self._source = (asyncio.get_running_loop(), read)

    def unbind(self) -> None:
        self._source = None

    def read(self) -> T | None:
        """The snapshot, or None: nothing bound, the loop is gone or busy past the timeout, or the read failed.

        Called on the loop itself (`generate_latest` in a coroutine) it returns None rather than wait for a
        turn of the loop that cannot come.
        """
        source = self._source
        if source is None:
            return None
        loop, read = source
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            return None
        answer: concurrent.futures.Future[T] = concurrent.futures.Future()

        def start() -> None:
            # The coroutine is made here, on the loop: one made on the scraping thread and never run (the
            # loop closed meanwhile) would warn that it was never awaited.
            task: asyncio.Task[T] = loop.create_task(read())
            task.add_done_callback(lambda done: _settle(answer, done))

        try:
            loop.call_soon_threadsafe(start)
            return answer.result(READ_TIMEOUT_SECONDS)
        except RuntimeError:  # the loop is closed: its server stopped without unbinding
            return None
        except concurrent.futures.TimeoutError:
            logger.warning("%s left out of a scrape: the event loop did not answer within %gs",
                           self._what, READ_TIMEOUT_SECONDS)  # fmt: skip
            return None
        except Exception:
            logger.exception("%s left out of a scrape: reading it failed", self._what)
            return None


def _settle(answer: concurrent.futures.Future[T], done: asyncio.Task[T]) -> None:
    if done.cancelled():
        answer.cancel()
    elif (error := done.exception()) is not None:
        answer.set_exception(error)
    else:
        answer.set_result(done.result())


class MetricsEndpoint:
    """A registry served over HTTP or HTTPS (`GET /metrics`, or any path), on threads of its own.

    Made by `serve`; `close()` (or `aclose()`) stops it.
    """

    def __init__(self, host: str, port: int, stop: Callable[[], None], *, scheme: str = "http") -> None:
        self.host, self.port, self.scheme = host, port, scheme
        self._stop: Callable[[], None] | None = stop

    @property
    def url(self) -> str:
        """Where Prometheus scrapes it, e.g. `http://127.0.0.1:9464/metrics` (`https://` over TLS)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving (blocks for up to half a second: the server notices between polls)."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()

    async def aclose(self) -> None:
        """`close()` on a thread, so the loop keeps turning meanwhile."""
        await asyncio.to_thread(self.close)


def serve(
    registry: CollectorRegistry,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    tls: TLSConfig | None = None,
    auth: Authenticator | None = None,
) -> MetricsEndpoint:
    """Serve `registry` with prometheus_client's WSGI app on a wsgiref server (as its `start_http_server` does).

    Args:
        registry: the metrics to serve (a metrics object's `registry`).
        port: port to listen on; 0 picks a free one (see the endpoint's `port`).
        host: interface to listen on.
        tls: serve HTTPS with its cert and key (read once, now), requiring client certificates under
            `require_client_cert`; None (or no cert) serves plain HTTP.
        auth: answer only scrapes whose credentials (bearer token or client certificate) name an operator
            (`auth.METRICS_ROLES`): 401 without credentials, 403 for another role. None lets everyone read.

    Raises:
        BindError: the address cannot be listened on.
        InvalidTLSConfigError: the cert and key cannot be served (e.g. given as bytes).
    """
    context = http.ssl_context(tls) if tls is not None and tls.cert is not None else None
    try:
        server = http.make_server(host, port, http.metrics_app(registry, auth), context)
    except OSError as error:
        raise BindError(f"cannot serve metrics on {host}:{port}: {error.strerror or error}") from error
    thread = threading.Thread(target=server.serve_forever, name=f"metrics-{server.server_address[1]}", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(_STOP_SECONDS)

    endpoint = MetricsEndpoint(host, int(server.server_address[1]), stop, scheme="https" if context else "http")
    logger.debug("metrics served at %s (thread %s)", endpoint.url, thread.name)
    return endpoint
