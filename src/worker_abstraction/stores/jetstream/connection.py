"""Connecting to NATS: server URLs, a CA file and a credentials file, and the server version check."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError

from worker_abstraction.errors import StoreUnavailableError, WorkerAbstractionError

# Per-message TTL (Nats-TTL), which lets a worker whose every registry died expire, came in 2.11.
MIN_SERVER_VERSION = (2, 11)
WRONG_LAST_SEQUENCE = (10071, 10164)  # the server's codes for a failed compare-and-set
_STREAM_IN_USE = 10058  # the server's code for "stream name already in use" (with another configuration)

_SCHEMES = ("nats", "tls")

logger = logging.getLogger(__name__)


# What nats-py raises when NATS does not answer: every error of its own is a nats.errors.Error (JetStream's
# APIError and ServiceUnavailableError among them), and its timeouts are also builtin TimeoutErrors (as are
# asyncio's). The store modules catch these at their boundary: none of them escapes as itself.
NATS_ERRORS: tuple[type[Exception], ...] = (NatsError, TimeoutError)


class NatsStoreError(WorkerAbstractionError):
    """The NATS store cannot be used: a malformed URL, an unreachable or too old server."""


class NatsUnavailableError(NatsStoreError, StoreUnavailableError):
    """NATS did not answer: no server reachable, no JetStream leader yet (a node died), or no answer in time.
    The same call may succeed a moment later; a server answers its caller UNAVAILABLE."""


@dataclass(frozen=True, slots=True)
class NatsOptions:
    """How to reach NATS.

    Args:
        servers: one or more `nats://HOST:PORT` (or `tls://HOST:PORT`) URLs of one cluster.
        creds_file: a NATS credentials file (JWT and NKey seed), as `nsc` writes them.
        tls_ca_file: trust this CA for the servers' certificates (implies TLS).
        connect_timeout_seconds: how long to try each server before giving up.
        replicas: copies of each bucket and stream created there (1; 3 on a 3-node cluster, so that one
            node may die). An existing one keeps the copies it was made with.
    """

    servers: tuple[str, ...]
    creds_file: Path | None = None
    tls_ca_file: Path | None = None
    connect_timeout_seconds: float = 5.0
    replicas: int = 1


def parse_servers(spec: str) -> tuple[str, ...]:
    """`nats://a:4222,nats://b:4222` as a tuple of URLs.

    Raises:
        NatsStoreError: an entry is not a nats:// or tls:// URL with a host and a port.
    """
    urls = tuple(part.strip() for part in spec.split(",") if part.strip())
    if not urls:
        raise NatsStoreError(f"no NATS server in {spec!r}; expected nats://HOST:PORT[,nats://HOST:PORT...]")
    for url in urls:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise NatsStoreError(f"malformed NATS URL {url!r}: {error}") from error
        if parts.scheme not in _SCHEMES or not parts.hostname or port is None:
            raise NatsStoreError(f"malformed NATS URL {url!r}; expected nats://HOST:PORT or tls://HOST:PORT")
    return urls


def check_server_version(version: str) -> None:
    """Refuse a server older than `MIN_SERVER_VERSION`.

    Raises:
        NatsStoreError: naming the server's version and the one needed.
    """
    match = re.match(r"v?(\d+)\.(\d+)", version)
    needed = ".".join(map(str, MIN_SERVER_VERSION))
    if match is None:
        raise NatsStoreError(f"NATS server reports an unreadable version {version!r}; need >= {needed}")
    if (int(match[1]), int(match[2])) < MIN_SERVER_VERSION:
        raise NatsStoreError(
            f"NATS server {version} is too old: the registry store needs >= {needed} (per-message TTL)"
        )


async def connect(options: NatsOptions, *, name: str = "wa-registry") -> Client:
    """A connection to one of `options.servers` whose version has been checked (`name`: as the server lists it).

    Raises:
        NatsStoreError: no server answered, or the one that did is too old.
    """
    tls: ssl.SSLContext | None = None
    if options.tls_ca_file is not None:
        tls = ssl.create_default_context(cafile=str(options.tls_ca_file))
    try:
        # nats-py keeps trying an unreachable cluster forever when reconnects are unlimited: bound the first try.
        async with asyncio.timeout(options.connect_timeout_seconds * len(options.servers) + 1):
            client = await nats.connect(
                servers=list(options.servers),
                name=name,
                tls=tls,
                user_credentials=str(options.creds_file) if options.creds_file is not None else None,
                connect_timeout=max(1, round(options.connect_timeout_seconds)),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                error_cb=_log_error,
            )
    except Exception as error:  # nats-py raises several unrelated types (OSError, NoServersError, ...)
        raise NatsUnavailableError(f"cannot connect to NATS at {', '.join(options.servers)}: {error!r}") from error
    try:
        version = client.connected_server_version
        check_server_version(f"{version.major}.{version.minor}.{version.patch}")
    except NatsStoreError:
        await client.close()
        raise
    return client


CLOSE_SECONDS = 5.0  # how long closing a connection may take


async def close(client: Client, *, timeout_seconds: float = CLOSE_SECONDS) -> None:
    """Close a connection, within `timeout_seconds` and whatever state it is in: nats-py's close can wait for
    good on a connection whose server went away while it was reconnecting, and a store closing must not.

    Its reconnecting loop is also left one more try to give up by itself: close() stops it with a cancel, which
    the loop can lose (a connection refused as the cancel comes reads as a failed try, on Python 3.11), and
    then it would try for good, and keep whoever closes the event loop waiting for it.
    """
    options = getattr(client, "options", None)
    if isinstance(options, dict):
        options["max_reconnect_attempts"] = 1
    try:
        async with asyncio.timeout(timeout_seconds):
            await client.close()
    except TimeoutError:
        logger.warning("NATS: the connection did not close within %gs; left behind", timeout_seconds)
    except Exception as error:  # (an error of the closing connection itself: it is closed as far as we care)
        logger.debug("NATS: closing the connection: %r", error)


async def _log_error(error: Exception) -> None:
    # Lost connections and the like: nats-py reconnects by itself; say so once per error, without a traceback.
    logger.warning("NATS: %r", error)


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or bring an existing one to `config` (limits may change; the server refuses a
    change of retention)."""
    try:
        await js.add_stream(config)
    except APIError as error:
        if error.err_code != _STREAM_IN_USE:
            raise
        await js.update_stream(config)
