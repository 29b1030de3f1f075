"""The `wa` command line: `wa registry`, `wa worker`, `wa submit`, `wa workers` (see `wa --help`).

This package is the only place that reads `WA_*` environment variables and config files (`config.py`) and
installs signal handlers; the helpers the subcommands share live here, the parser in `main.py`.

The parser imports every subcommand's module, so each imports at its top only what its flags need; what
running it needs (the daemon's client, a server, rich, gRPC health) it imports in `run`. `wa --help` and
`wa COMMAND --help` then load little (tests/test_startup.py checks which modules they load).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from worker_abstraction.cli.config import Settings
from worker_abstraction.errors import OrchestratorUnavailableError, RegistryUnavailableError

if TYPE_CHECKING:
    from worker_abstraction.auth import Authenticator
    from worker_abstraction.observability.metrics import Metrics
    from worker_abstraction.tls import TLSConfig

_log = logging.getLogger(__name__)

T = TypeVar("T")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class UsageError(Exception):
    """A command line that parsed but cannot be acted on (e.g. a worker class that does not import)."""


class StopSignals:
    """SIGINT/SIGTERM, caught from `with StopSignals()` on; use it before printing a readiness line.

    The handlers are removed at the first signal, so a second one interrupts a graceful stop.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.received: asyncio.Future[signal.Signals] = self._loop.create_future()

    def __enter__(self) -> StopSignals:
        for sig in _STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._remove_handlers()

    async def wait(self, done: Awaitable[None]) -> signal.Signals | None:
        """Wait for a signal or for `done` to finish, whichever comes first.

        Returns:
            The signal received, or None when `done` finished first.
        """
        finished = asyncio.ensure_future(done)
        waiters: set[asyncio.Future[Any]] = {self.received, finished}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if self.received.done():
            # `finished` is left to end by itself once the caller stops the server: canceling grpc's
            # wait_for_termination() cancels the server's own shutdown future, and stop() then raises.
            return self.received.result()
        finished.result()  # re-raises what ended it
        return None

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self.received.done():
            _log.info("received %s, stopping (send it again to force)", sig.name)
            self.received.set_result(sig)
        self._remove_handlers()

    def _remove_handlers(self) -> None:
        for sig in _STOP_SIGNALS:
            self._loop.remove_signal_handler(sig)


class Interrupted(Exception):
    """A command's wait was ended by SIGINT/SIGTERM (`signal`); what it waited for was canceled."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.signal = sig

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal)


async def unless_interrupted(work: Awaitable[T]) -> T:
    """What `work` comes to, unless SIGINT/SIGTERM comes first (signals are caught on the main thread only).

    Raises:
        Interrupted: a signal came first; `work` was canceled.
        (whatever `work` raised)
    """
    with contextlib.ExitStack() as stack:
        signals = StopSignals()
        if threading.current_thread() is threading.main_thread():  # only there can signals be caught
            stack.enter_context(signals)
        following = asyncio.ensure_future(work)
        waiters: set[asyncio.Future[Any]] = {following, signals.received}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not following.done():
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
            raise Interrupted(signals.received.result())
    return following.result()


async def serve_until_signal(
    *,
    start: Callable[[], Awaitable[None]],
    ready_line: Callable[[], str],
    ended: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    what: str,
) -> int:
    """Start a daemon, print its readiness line, serve until SIGINT/SIGTERM, stop it; the exit code.

    Signals are caught before `start`, so a signal during start-up still stops it cleanly.
    """
    with StopSignals() as signals:
        await start()
        try:
            print(ready_line(), flush=True)
            if await signals.wait(ended()) is None:
                _log.error("%s ended on its own", what)
                return 1
        finally:
            await stop()
    return 0


def add_metrics_argument(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        default=settings.default("metrics_port"),
        help=settings.help(
            "metrics_port",
            "serve Prometheus metrics at http://HOST:PORT/metrics, HOST being --host; 0 picks a port. With "
            "--tls-cert it is https://, with --auth-tokens (or mTLS) it answers operators only",
        ),
    )


@contextlib.asynccontextmanager
async def serving_metrics(
    metrics: Metrics | None,
    port: int | None,
    host: str,
    *,
    tls: TLSConfig | None = None,
    auth: Authenticator | None = None,
) -> AsyncIterator[None]:
    """Serve `metrics` on host:port while the block runs (nothing when `metrics` is None): over HTTPS with
    the daemon's own certificate when it has one, to operators only when it checks credentials.

    Bound before the daemon starts, so a port in use stops it before it serves anything.

    Raises:
        UsageError: the port is not a port number.
        BindError: the address cannot be listened on.
    """
    if metrics is None or port is None:
        yield
        return
    if not 0 <= port <= 65535:
        raise UsageError(f"--metrics-port must be 0..65535, got {port}")
    endpoint = metrics.serve(port, host=host, tls=tls, auth=auth)
    _log.info("serving metrics at %s", endpoint.url)
    try:
        yield
    finally:
        await endpoint.aclose()


DEFAULT_ORCHESTRATOR = "127.0.0.1:50052"  # for the commands that need a daemon when none is configured


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def actions_of(
    parser: argparse.ArgumentParser, settings: Settings
) -> Callable[[str, str, str], argparse.ArgumentParser]:
    """The maker of a command's actions (`wa workflow run`, `wa schedule add`...), each with the daemon flags."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        made = actions.add_parser(name, help=summary, description=description, formatter_class=parser.formatter_class)
        add_orchestrator_argument(made, settings)
        return made

    return action


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 0, got {text!r}")
    return value


def add_registry_argument(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument(
        "--registry",
        metavar="HOST:PORT[,HOST:PORT...]",
        default=settings.default("registry"),
        help=settings.help("registry", "registry address; several (replicas) are tried in order"),
    )


def add_orchestrator_argument(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument(
        "--orchestrator",
        metavar="HOST:PORT",
        default=settings.default("orchestrator") or DEFAULT_ORCHESTRATOR,
        help=settings.help("orchestrator", "orchestrator daemon address"),
    )


def cannot_reach(what: str, address: str, reason: str) -> str:
    """The one wording for a daemon that cannot be reached: `cannot reach the orchestrator at ADDR: why`."""
    return f"cannot reach the {what} at {address}: {reason or 'no answer'}"


def unreachable(error: OrchestratorUnavailableError | RegistryUnavailableError, address: str) -> str:
    """`cannot_reach` for the error a client raised (its own "orchestrator ADDR:" prefix dropped)."""
    what = "orchestrator" if isinstance(error, OrchestratorUnavailableError) else "registry"
    reason = str(error)
    for prefix in (f"{what} {address}: ", f"{what} {address} "):
        reason = reason.removeprefix(prefix)
    return cannot_reach(what, address, reason)


def unknown_task(task_id: str, address: str) -> str:
    """The one wording for a task id the daemon does not know."""
    return f"no task {task_id!r} on the orchestrator at {address}"
